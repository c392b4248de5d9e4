"""The shared-memory ABI: constants, record types, decoders and encoders.

Everything here restates ``Sources/CFaultRingABI/include/faultring_abi.h``
(layout version 1) and ``Docs/ABI.md``. All integers are little-endian.
"""

from __future__ import annotations

import struct
from typing import Dict, NamedTuple, Tuple, Union

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

PRODUCER_MAGIC = 0x31474E4952544C46  #: "FLTRING1"
LAYOUT_VERSION = 1
PRODUCER_HEADER_SIZE = 576
CONSUMER_HEADER_SIZE = 256
ENTRY_SIZE = 64
RESPONSE_SLOT_SIZE = 64
REGION_ALIGN = 4096
MIN_ENTRIES = 2
MAX_ENTRIES = 1 << 20

ABI_NONE = 0
ABI_V1 = 1
ABI_V2 = 2
ABI_MAX = ABI_V2

STATE_STARTING = 1
STATE_RUNNING = 2
STATE_CLOSED = 3

FEATURES_KNOWN = 0

FAULT_DMA_UNRECOV = 1
FAULT_PAGE_REQ = 2
FAULT_LOST = 3

PERM_READ = 1 << 0
PERM_WRITE = 1 << 1
PERM_EXEC = 1 << 2
PERM_PRIV = 1 << 3

# ABI 1 flags (the kernel's IOMMU_FAULT_UNRECOV_* / IOMMU_FAULT_PAGE_REQUEST_*).
V1_UNRECOV_PASID_VALID = 1 << 0
V1_UNRECOV_ADDR_VALID = 1 << 1
V1_UNRECOV_FETCH_ADDR_VALID = 1 << 2
V1_PRQ_PASID_VALID = 1 << 0
V1_PRQ_LAST_PAGE = 1 << 1
V1_PRQ_PRIV_DATA = 1 << 2
V1_PRQ_NEEDS_PASID = 1 << 3

# ABI 2 record flags.
V2_PASID_VALID = 1 << 0
V2_LAST_PAGE = 1 << 1
V2_NEEDS_PASID = 1 << 2
V2_ADDR_VALID = 1 << 3
V2_FETCH_ADDR_VALID = 1 << 4
V2_FLAGS_KNOWN = 0x1F

RESP_SUCCESS = 0
RESP_INVALID = 1
RESP_FAILURE = 2
RESP_VERSION_1 = 1
RESP_VERSION_2 = 2
RESP_PASID_VALID = 1 << 0
RESP_GRPID_VALID = 1 << 1
V1_RESPONSE_SIZE = 24
V2_RESPONSE_SIZE = 32

PASID_MAX = 0xFFFFF
PRGI_MAX = 0x1FF

# Byte offsets in the producer region.
P_ABI = 20
P_STATE = 48
P_COUNTERS = 128
P_FAULT_PROD = 384
P_RESP_CONS = 448
P_PRODUCER_SLEEPING = 512

# Byte offsets in the consumer region.
C_REQUESTED_ABI = 0
C_REQUESTED_FEATURES = 8
C_FAULT_CONS = 64
C_RESP_PROD = 128
C_CONSUMER_SLEEPING = 192

#: ``struct faultring_counters``, in order (the 7 reserved words omitted).
COUNTER_NAMES = (
    "records_published",
    "records_lost",
    "groups_overflowed",
    "doorbells_rung",
    "responses_valid",
    "publish_refused",
    "bad_consumer_index",
    "bad_response_index",
    "renegotiations",
    "bad_abi_requests",
    "bad_feature_requests",
    "resp_bad_argsz",
    "resp_trailing_nonzero",
    "resp_bad_version",
    "resp_unknown_flags",
    "resp_reserved_nonzero",
    "resp_bad_code",
    "resp_out_of_range",
    "match_completed",
    "match_unknown",
    "match_duplicate",
    "match_late",
    "match_stale",
    "match_foreign_device",
    "match_mismatch",
)

#: Counters that count a consumer's malformed writes (ABI.md section 9).
VALIDATION_FAILURE_COUNTERS = (
    "bad_consumer_index",
    "bad_response_index",
    "renegotiations",
    "bad_abi_requests",
    "bad_feature_requests",
    "resp_bad_argsz",
    "resp_trailing_nonzero",
    "resp_bad_version",
    "resp_unknown_flags",
    "resp_reserved_nonzero",
    "resp_bad_code",
    "resp_out_of_range",
)

#: Counters of valid responses that completed nothing (wrong answers).
MATCH_FAILURE_COUNTERS = (
    "match_unknown",
    "match_duplicate",
    "match_late",
    "match_stale",
    "match_foreign_device",
    "match_mismatch",
)

# --------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------

PRODUCER_HEADER = struct.Struct("<Q12I4Q")  # the first 88 bytes
COUNTERS = struct.Struct("<25Q")
V2_FAULT = struct.Struct("<8I4Q")
V2_LOST = struct.Struct("<4IQ2IQ16xQ")
V1_PAGE_REQUEST = struct.Struct("<II4IQ2Q16x")
V1_UNRECOVERABLE = struct.Struct("<II4I2Q24x")
V1_RESPONSE = struct.Struct("<6I")
V2_RESPONSE = struct.Struct("<4IQ2I")
RECORD_TYPE = struct.Struct("<I")

assert PRODUCER_HEADER.size == 88
assert COUNTERS.size == 200
assert V2_FAULT.size == V2_LOST.size == V1_PAGE_REQUEST.size == V1_UNRECOVERABLE.size == 64
assert V1_RESPONSE.size == V1_RESPONSE_SIZE and V2_RESPONSE.size == V2_RESPONSE_SIZE


class ProducerHeader(NamedTuple):
    """The write-once fields of ``struct faultring_producer_header``."""

    magic: int
    layout_version: int
    header_size: int
    max_abi: int
    abi: int
    entry_size: int
    entry_count: int
    ring_offset: int
    response_slot_size: int
    response_count: int
    response_ring_offset: int
    state: int
    producer_pid: int
    features_offered: int
    features_in_force: int
    producer_region_size: int
    consumer_region_size: int


def parse_producer_header(buf, offset: int = 0) -> ProducerHeader:
    """Decode the first 88 bytes of a producer region."""
    return ProducerHeader._make(PRODUCER_HEADER.unpack_from(buf, offset))


def parse_counters(buf, offset: int = P_COUNTERS) -> Dict[str, int]:
    """Decode ``struct faultring_counters`` into a dict keyed by field name."""
    return dict(zip(COUNTER_NAMES, COUNTERS.unpack_from(buf, offset)))


def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, ... (0 is not a power of two)."""
    return n > 0 and (n & (n - 1)) == 0


# --------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------


class V2Fault(NamedTuple):
    """An ABI 2 fault record (``struct faultring_v2_fault``): a page request
    (``type == FAULT_PAGE_REQ``) or an unrecoverable fault (``FAULT_DMA_UNRECOV``)."""

    type: int
    sequence: int
    device_id: int
    flags: int
    pasid: int
    grpid: int
    perm: int
    reason: int
    addr: int
    fetch_addr: int
    cookie: int
    timestamp_ns: int

    @property
    def is_page_request(self) -> bool:
        """True for a page request."""
        return self.type == FAULT_PAGE_REQ

    @property
    def is_last_page(self) -> bool:
        """True for the ``LAST_PAGE`` record that closes a page-request group."""
        return self.type == FAULT_PAGE_REQ and bool(self.flags & V2_LAST_PAGE)

    @property
    def needs_pasid(self) -> bool:
        """True if the device wants its PASID back (the service echoes it in ABI 2)."""
        return bool(self.flags & V2_NEEDS_PASID)


class V2Lost(NamedTuple):
    """An ABI 2 LOST record (``struct faultring_v2_lost``): ``lost_records``
    records were dropped for a full ring, starting at ``first_lost_sequence``."""

    type: int
    sequence: int
    lost_records: int
    first_lost_sequence: int
    total_lost: int
    timestamp_ns: int

    is_page_request = False
    is_last_page = False


class V1PageRequest(NamedTuple):
    """An ABI 1 page request: the kernel's ``struct iommu_fault`` with
    ``type == IOMMU_FAULT_PAGE_REQ`` and its ``struct iommu_fault_page_request``."""

    type: int
    flags: int
    pasid: int
    grpid: int
    perm: int
    addr: int
    private_data: Tuple[int, int]

    @property
    def is_page_request(self) -> bool:
        """Always True."""
        return True

    @property
    def is_last_page(self) -> bool:
        """True for the ``LAST_PAGE`` record that closes a page-request group."""
        return bool(self.flags & V1_PRQ_LAST_PAGE)

    @property
    def needs_pasid(self) -> bool:
        """True if the answer must carry the PASID (``NEEDS_PASID``)."""
        return bool(self.flags & V1_PRQ_NEEDS_PASID)


class V1Unrecoverable(NamedTuple):
    """An ABI 1 unrecoverable fault: the kernel's ``struct iommu_fault`` with
    ``type == IOMMU_FAULT_DMA_UNRECOV`` and its ``struct iommu_fault_unrecoverable``."""

    type: int
    reason: int
    flags: int
    pasid: int
    perm: int
    addr: int
    fetch_addr: int

    is_page_request = False
    is_last_page = False


class UnknownRecord(NamedTuple):
    """A record whose ``type`` this client does not know; ``raw`` is its 64 bytes."""

    type: int
    raw: bytes

    is_page_request = False
    is_last_page = False


Record = Union[V2Fault, V2Lost, V1PageRequest, V1Unrecoverable, UnknownRecord]

_v2_fault = V2_FAULT.unpack_from
_v2_lost = V2_LOST.unpack_from
_v1_prq = V1_PAGE_REQUEST.unpack_from
_v1_unrec = V1_UNRECOVERABLE.unpack_from
_type = RECORD_TYPE.unpack_from
_V2Fault_make = V2Fault._make


def decode_v2(buf, offset: int = 0) -> Record:
    """Decode the 64-byte ABI 2 record at ``buf[offset:]``."""
    fields = _v2_fault(buf, offset)
    t = fields[0]
    if t == FAULT_PAGE_REQ or t == FAULT_DMA_UNRECOV:
        return _V2Fault_make(fields)
    if t == FAULT_LOST:
        t, seq, _r0, _fl, lost, first, _r1, total, ts = _v2_lost(buf, offset)
        return V2Lost(t, seq, lost, first, total, ts)
    return UnknownRecord(t, bytes(buf[offset:offset + ENTRY_SIZE]))


def decode_v1(buf, offset: int = 0) -> Record:
    """Decode the 64-byte ABI 1 record (``struct iommu_fault``) at ``buf[offset:]``."""
    (t,) = _type(buf, offset)
    if t == FAULT_PAGE_REQ:
        t, _pad, flags, pasid, grpid, perm, addr, p0, p1 = _v1_prq(buf, offset)
        return V1PageRequest(t, flags, pasid, grpid, perm, addr, (p0, p1))
    if t == FAULT_DMA_UNRECOV:
        t, _pad, reason, flags, pasid, perm, addr, fetch = _v1_unrec(buf, offset)
        return V1Unrecoverable(t, reason, flags, pasid, perm, addr, fetch)
    return UnknownRecord(t, bytes(buf[offset:offset + ENTRY_SIZE]))


# --------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------


def encode_v1_response(record: V1PageRequest, code: int) -> bytes:
    """The ABI 1 response (``struct iommu_page_response``, 24 bytes) for ``record``'s group.

    ``flags = PASID_VALID`` and ``pasid`` = the request's PASID iff the
    request had ``NEEDS_PASID``; otherwise both are 0.
    """
    if record.flags & V1_PRQ_NEEDS_PASID:
        flags, pasid = RESP_PASID_VALID, record.pasid
    else:
        flags, pasid = 0, 0
    return V1_RESPONSE.pack(V1_RESPONSE_SIZE, RESP_VERSION_1, flags, pasid, record.grpid, code)


def encode_v2_response(record: V2Fault, code: int, check_pasid: bool = False,
                       check_grpid: bool = False) -> bytes:
    """The ABI 2 response (32 bytes) for ``record``'s group: its cookie and ``code``.

    ``check_pasid`` / ``check_grpid`` add the optional ``PASID_VALID`` /
    ``GRPID_VALID`` checks (the service then also compares those fields).
    """
    flags = 0
    pasid = grpid = 0
    if check_pasid:
        flags |= RESP_PASID_VALID
        pasid = record.pasid
    if check_grpid:
        flags |= RESP_GRPID_VALID
        grpid = record.grpid
    return V2_RESPONSE.pack(V2_RESPONSE_SIZE, RESP_VERSION_2, flags, code, record.cookie, pasid, grpid)
