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

COMMAND_NAMES = {
    0: "(none)",
    CMD_HELLO: "HELLO",
    CMD_ATTACH: "ATTACH",
    CMD_DETACH: "DETACH",
    CMD_STATS: "STATS",
    CMD_BYE: "BYE",
    CMD_ADD_SOURCE: "ADD_SOURCE",
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


class AttachReply(NamedTuple):
    """``struct faultring_msg_attach_reply``."""

    queue_created: int
    entry_count: int
    response_count: int
    attached: int
