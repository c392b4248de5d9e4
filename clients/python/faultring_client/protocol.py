"""The control protocol's wire format (``faultring_protocol.h``, ``Docs/PROTOCOL.md``)."""

from __future__ import annotations

import struct
from typing import NamedTuple

PROTOCOL_VERSION = 1
MSG_MAX = 65536
MSG_FDS_MAX = 4
HEADER_SIZE = 16

CMD_HELLO = 1
CMD_ATTACH = 2
CMD_DETACH = 3
CMD_STATS = 4
CMD_BYE = 5
CMD_ADD_SOURCE = 6
CMD_ADD_GUEST_MEMORY = 7
CMD_BIND = 8
CMD_UNBIND = 9
CMD_INVALIDATE = 10
CMD_BIND_MSI = 11

#: BIND / UNBIND formats: a VT-d PASID's first stage, or an SMMUv3 CD table.
BIND_VTD_PASID = 1
BIND_SMMUV3_STE = 2
#: INVALIDATE granularities and flags (Docs/NESTED.md §3).
INV_GLOBAL = 0
INV_PASID = 1
INV_RANGE = 2
INV_DEVICE_TLB = 3
INV_CONTEXT = 4
INV_FLAG_LEAF = 1 << 0
INV_FLAG_PASID = 1 << 1
INV_FLAG_RANGE = 1 << 2
#: BIND_MSI flag: remove the binding at ``iova``.
MSI_FLAG_UNBIND = 1 << 0

COMMAND_NAMES = {
    0: "(none)",
    CMD_HELLO: "HELLO",
    CMD_ATTACH: "ATTACH",
    CMD_DETACH: "DETACH",
    CMD_STATS: "STATS",
    CMD_BYE: "BYE",
    CMD_ADD_SOURCE: "ADD_SOURCE",
    CMD_ADD_GUEST_MEMORY: "ADD_GUEST_MEMORY",
    CMD_BIND: "BIND",
    CMD_UNBIND: "UNBIND",
    CMD_INVALIDATE: "INVALIDATE",
    CMD_BIND_MSI: "BIND_MSI",
}

MSG_REPLY = 1 << 0
MSG_ERROR = 1 << 1
MSG_TEXT = 1 << 2
MSG_FLAGS_KNOWN = MSG_REPLY | MSG_ERROR | MSG_TEXT

MAX_DEVICES_PER_MESSAGE = 64

HEADER = struct.Struct("<HHIII")
ATTACH_REPLY = struct.Struct("<4I")


class Header(NamedTuple):
    """``struct faultring_msg_header``."""

    id: int
    command: int
    size: int
    flags: int
    error: int


def command_name(command: int) -> str:
    """``"ATTACH"`` for 2, ``"command 9"`` for an unknown one."""
    return COMMAND_NAMES.get(command, f"command {command}")


def pack_message(msg_id: int, command: int, payload: bytes = b"", flags: int = 0) -> bytes:
    """A whole request: header (size = 16 + payload) then payload."""
    return HEADER.pack(msg_id, command, HEADER_SIZE + len(payload), flags, 0) + payload


def pack_attach(abi: int, device_ids) -> bytes:
    """ATTACH payload: ``{u32 abi; u32 device_count; u32 device_ids[]}``."""
    ids = list(device_ids)
    return struct.pack(f"<II{len(ids)}I", abi, len(ids), *ids)


def pack_detach(device_ids) -> bytes:
    """DETACH payload: ``{u32 device_count; u32 device_ids[]}`` (empty: all)."""
    ids = list(device_ids)
    return struct.pack(f"<I{len(ids)}I", len(ids), *ids)


def pack_guest_memory(gpa: int, size: int, offset: int) -> bytes:
    """ADD_GUEST_MEMORY payload: ``{u32 argsz = 32, flags = 0; u64 gpa, size, offset}``."""
    return struct.pack("<IIQQQ", 32, 0, gpa, size, offset)


def _pack_device_set(fmt: int, pasid: int, words, device_ids) -> bytes:
    """``{u32 argsz, flags, format, pasid, device_count, reserved; u64 words[]; u32 ids[]}``: the
    head BIND and UNBIND share, BIND's data words (none for UNBIND), the ids."""
    ids = list(device_ids)
    argsz = 24 + 8 * len(words) + 4 * len(ids)
    return struct.pack(f"<6I{len(words)}Q{len(ids)}I", argsz, 0, fmt, pasid, len(ids), 0, *words, *ids)


def pack_bind(fmt: int, pasid: int, data, device_ids) -> bytes:
    """BIND payload: the shared head, ``u64 data[8]`` (short data padded with zeros), the ids."""
    return _pack_device_set(fmt, pasid, list(data) + [0] * (8 - len(data)), device_ids)


def pack_unbind(fmt: int, pasid: int, device_ids) -> bytes:
    """UNBIND payload: the shared head, then the ids."""
    return _pack_device_set(fmt, pasid, [], device_ids)


def pack_invalidate(granularity: int, flags: int, device: int, pasid: int, address: int, size: int) -> bytes:
    """INVALIDATE payload: ``{u32 argsz = 40, flags, granularity, device, pasid, reserved; u64 address, size}``."""
    return struct.pack("<6IQQ", 40, flags, granularity, device, pasid, 0, address, size)


def pack_bind_msi(flags: int, iova: int, gpa: int, size: int) -> bytes:
    """BIND_MSI payload: ``{u32 argsz = 32, flags; u64 iova, gpa, size}``."""
    return struct.pack("<IIQQQ", 32, flags, iova, gpa, size)


class AttachReply(NamedTuple):
    """``struct faultring_msg_attach_reply``."""

    queue_created: int
    entry_count: int
    response_count: int
    attached: int
