"""A consumer's view of one faultring queue: the two mapped regions and the
two doorbells (``Docs/ABI.md``).

Python cannot issue a full memory fence, so this module follows the Python
rules of ABI.md section 3: every index is one aligned 4-byte load or store
through ``memoryview(mm).cast("I")``; after publishing ``resp_prod`` or
``requested_abi`` the producer's doorbell is rung unconditionally; and the
consumer sleeps on its own doorbell only in bounded slices, re-checking
``fault_prod`` after every wake.
"""

from __future__ import annotations

import enum
import errno
import fcntl
import mmap
import os
import platform
import select
import socket
import stat
import time
import warnings
from dataclasses import dataclass, asdict
from typing import Dict, List, Optional, Sequence

from . import abi as A
from .errors import (
    DescriptorError,
    FaultringError,
    ProducerBroken,
    RegionError,
    ResponseRingFull,
    ServiceGone,
)

__all__ = ["Queue", "WaitResult", "ConsumerCounters", "ProducerCounters"]

F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
F_SEAL_SEAL = getattr(fcntl, "F_SEAL_SEAL", 0x0001)
F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)
F_SEAL_GROW = getattr(fcntl, "F_SEAL_GROW", 0x0004)
F_SEAL_WRITE = getattr(fcntl, "F_SEAL_WRITE", 0x0008)
F_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x0010)

#: Seals every region must carry.
REQUIRED_SEALS = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL
#: Seals the producer region must carry.
PRODUCER_SEALS = REQUIRED_SEALS | F_SEAL_FUTURE_WRITE

#: The largest region this client maps. A real one is at most
#: 4096 + 2^20 * 64 bytes (64 MiB and a page); anything far larger is refused.
MAX_REGION_SIZE = 1 << 30

_M32 = 0xFFFFFFFF
_ONE = (1).to_bytes(8, "little")
_ZERO_SLOT = bytes(A.RESPONSE_SLOT_SIZE)

# u32 word indices (byte offset // 4).
_W_ABI = A.P_ABI // 4
_W_STATE = A.P_STATE // 4
_W_FAULT_PROD = A.P_FAULT_PROD // 4
_W_RESP_CONS = A.P_RESP_CONS // 4
_W_PRODUCER_SLEEPING = A.P_PRODUCER_SLEEPING // 4
_W_REQUESTED_ABI = A.C_REQUESTED_ABI // 4
_W_REQUESTED_FEATURES = A.C_REQUESTED_FEATURES // 4
_W_FAULT_CONS = A.C_FAULT_CONS // 4
_W_RESP_PROD = A.C_RESP_PROD // 4
_W_CONSUMER_SLEEPING = A.C_CONSUMER_SLEEPING // 4

_HUP = select.POLLHUP | select.POLLERR | select.POLLNVAL


class WaitResult(enum.Enum):
    """What :meth:`Queue.wait` saw."""

    #: Records are waiting: call :meth:`Queue.read`.
    RECORDS = "records"
    #: Nothing arrived before the timeout.
    TIMEOUT = "timeout"
    #: The producer closed the queue (``state == 3``) and every record has
    #: been read: no record will follow (BYE, the service stopping, ...).
    CLOSED = "closed"
    #: The control connection hung up while the queue was still open and
    #: drained: the service died (for example SIGKILL) without closing it.
    SERVICE_GONE = "service-gone"


@dataclass
class ConsumerCounters:
    """What this consumer saw, counted on its side of the ring."""

    #: records read, LOST records included
    records: int = 0
    #: page-request records read
    page_requests: int = 0
    #: page-request groups closed (LAST_PAGE records read)
    groups: int = 0
    #: unrecoverable faults read
    unrecoverable: int = 0
    #: ABI 2 LOST records read
    lost_records: int = 0
    #: records the LOST records said were dropped (the sum of ``lost_records``)
    lost_reported: int = 0
    #: ``total_lost`` of the last LOST record
    last_total_lost: int = 0
    #: ABI 2 sequence numbers that did not follow (a gap no LOST record explains)
    sequence_gaps: int = 0
    #: sequence numbers skipped in those gaps
    sequence_missing: int = 0
    #: records of an unknown type
    unknown_records: int = 0
    #: responses written into slots
    responses_written: int = 0
    #: responses published with ``resp_prod``
    responses_committed: int = 0
    #: times :meth:`Queue.answer` found the response ring full
    response_ring_full: int = 0
    #: writes to the producer doorbell
    doorbells_rung: int = 0
    #: doorbell writes that failed (the producer's end gone)
    doorbell_errors: int = 0
    #: times the consumer slept on its doorbell
    sleeps: int = 0

    def as_dict(self) -> Dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


class ProducerCounters(dict):
    """The producer's ``struct faultring_counters`` (a dict by field name)."""

    def validation_failures(self) -> Dict[str, int]:
        """The non-zero slot and index validation failures (ABI.md section 9)."""
        return {k: self[k] for k in A.VALIDATION_FAILURE_COUNTERS if self[k]}

    def match_failures(self) -> Dict[str, int]:
        """The non-zero counts of valid responses that completed nothing."""
        return {k: self[k] for k in A.MATCH_FAILURE_COUNTERS if self[k]}


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _check_region_fd(fd: int, name: str, seals_needed: int, access: int) -> int:
    """Validate a region descriptor; return its size."""
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise DescriptorError(f"{name} (fd {fd}): fstat failed: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise DescriptorError(f"{name} (fd {fd}) is not a memfd: file mode 0o{st.st_mode:o}")
    try:
        seals = fcntl.fcntl(fd, F_GET_SEALS)
    except OSError as e:
        raise DescriptorError(
            f"{name} (fd {fd}) is not a sealable memfd: F_GET_SEALS failed: {e.strerror}") from None
    missing = seals_needed & ~seals
    if missing:
        raise DescriptorError(
            f"{name} (fd {fd}) seals 0x{seals:x} lack 0x{missing:x} (required 0x{seals_needed:x}: "
            f"SHRINK|GROW|SEAL{'|FUTURE_WRITE' if seals_needed & F_SEAL_FUTURE_WRITE else ''})")
    if access == os.O_RDWR and seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
        raise DescriptorError(f"{name} (fd {fd}) seals 0x{seals:x} forbid writing, which the consumer must do")
    mode = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    if mode != access:
        names = {os.O_RDONLY: "O_RDONLY", os.O_WRONLY: "O_WRONLY", os.O_RDWR: "O_RDWR"}
        raise DescriptorError(
            f"{name} (fd {fd}) is opened {names.get(mode, hex(mode))}, must be {names[access]}")
    return st.st_size


def _check_doorbell_fd(fd: int, name: str) -> None:
    try:
        st = os.fstat(fd)
    except OSError as e:
        raise DescriptorError(f"{name} (fd {fd}): fstat failed: {e.strerror}") from None
    if not stat.S_ISSOCK(st.st_mode):
        raise DescriptorError(f"{name} (fd {fd}) is not a socket: file mode 0o{st.st_mode:o}")
    s = socket.socket(fileno=fd)
    try:
        family, kind = s.family, s.type
    finally:
        s.detach()
    if family != socket.AF_UNIX or kind != socket.SOCK_DGRAM:
        raise DescriptorError(
            f"{name} (fd {fd}) is a {getattr(family, 'name', family)} "
            f"{getattr(kind, 'name', kind)} socket, must be AF_UNIX SOCK_DGRAM")
    os.set_blocking(fd, False)


def _validate_header(h: A.ProducerHeader, psize: int, csize: int,
                     entry_count: Optional[int], response_count: Optional[int]) -> None:
    def bad(field: str, value, why: str) -> RegionError:
        return RegionError(f"producer header: {field} {value} {why}")

    if h.magic != A.PRODUCER_MAGIC:
        raise bad("magic", f"0x{h.magic:016x}", f"is not 0x{A.PRODUCER_MAGIC:016x} (\"FLTRING1\")")
    if h.layout_version != A.LAYOUT_VERSION:
        raise bad("layout_version", h.layout_version, f"is not {A.LAYOUT_VERSION}")
    if h.header_size != A.PRODUCER_HEADER_SIZE:
        raise bad("header_size", h.header_size, f"is not {A.PRODUCER_HEADER_SIZE}")
    if not 1 <= h.max_abi <= A.ABI_MAX:
        raise bad("max_abi", h.max_abi, f"is outside 1..{A.ABI_MAX}")
    if h.entry_size != A.ENTRY_SIZE:
        raise bad("entry_size", h.entry_size, f"is not {A.ENTRY_SIZE}")
    if h.response_slot_size != A.RESPONSE_SLOT_SIZE:
        raise bad("response_slot_size", h.response_slot_size, f"is not {A.RESPONSE_SLOT_SIZE}")
    for field, n in (("entry_count", h.entry_count), ("response_count", h.response_count)):
        if not A.is_power_of_two(n) or not A.MIN_ENTRIES <= n <= A.MAX_ENTRIES:
            raise bad(field, n, f"is not a power of two in {A.MIN_ENTRIES}..{A.MAX_ENTRIES}")
    if h.ring_offset % A.REGION_ALIGN or h.ring_offset < h.header_size:
        raise bad("ring_offset", h.ring_offset,
                  f"is not a multiple of {A.REGION_ALIGN} at or after the header")
    if h.ring_offset + h.entry_count * A.ENTRY_SIZE > psize:
        raise bad("ring_offset + entry_count*64",
                  h.ring_offset + h.entry_count * A.ENTRY_SIZE,
                  f"is beyond the producer region's {psize} bytes")
    if h.response_ring_offset % A.REGION_ALIGN or h.response_ring_offset < A.CONSUMER_HEADER_SIZE:
        raise bad("response_ring_offset", h.response_ring_offset,
                  f"is not a multiple of {A.REGION_ALIGN} after the consumer header")
    if h.response_ring_offset + h.response_count * A.RESPONSE_SLOT_SIZE > csize:
        raise bad("response_ring_offset + response_count*64",
                  h.response_ring_offset + h.response_count * A.RESPONSE_SLOT_SIZE,
                  f"is beyond the consumer region's {csize} bytes")
    if h.producer_region_size != psize:
        raise bad("producer_region_size", h.producer_region_size,
                  f"disagrees with the descriptor's size {psize}")
    if h.consumer_region_size != csize:
        raise bad("consumer_region_size", h.consumer_region_size,
                  f"disagrees with the descriptor's size {csize}")
    if h.state not in (A.STATE_STARTING, A.STATE_RUNNING, A.STATE_CLOSED):
        raise bad("state", h.state, "is not 1, 2 or 3")
    if h.abi not in (A.ABI_NONE, A.ABI_V1, A.ABI_V2) or h.abi > h.max_abi:
        raise bad("abi", h.abi, f"is not 0 or an ABI up to max_abi {h.max_abi}")
    if entry_count is not None and h.entry_count != entry_count:
        raise bad("entry_count", h.entry_count, f"disagrees with the ATTACH reply's {entry_count}")
    if response_count is not None and h.response_count != response_count:
        raise bad("response_count", h.response_count,
                  f"disagrees with the ATTACH reply's {response_count}")


_ORDERED_MACHINES = ("x86_64", "amd64", "i686", "i386")
_warned_machine = False


def _warn_if_weakly_ordered() -> None:
    global _warned_machine
    machine = platform.machine().lower()
    if not _warned_machine and machine not in _ORDERED_MACHINES:
        _warned_machine = True
        warnings.warn(f"faultring_client: the ABI's Python rules assume x86-64 memory ordering; "
                      f"this machine is {machine}", RuntimeWarning, stacklevel=3)


class Queue:
    """One faultring queue, mapped and validated.

    ``Queue(producer_fd, consumer_fd, consumer_doorbell_fd, producer_doorbell_fd)``
    takes ownership of the four descriptors (in the ``QueueFiles`` order of
    ABI.md section 1): they are closed by :meth:`close`, and also when the
    constructor raises. It checks each descriptor (sealed memfds, the
    producer region read-only, ``AF_UNIX`` ``SOCK_DGRAM`` doorbells), maps
    the producer region read-only and the consumer region read-write, and
    validates the producer header. Then call :meth:`negotiate` (the
    :class:`~faultring_client.Client` does it for you).

    ``control`` is the control socket, or None; while it is set, :meth:`wait`
    reports :attr:`WaitResult.SERVICE_GONE` when it hangs up.
    ``entry_count`` / ``response_count``, if given, must match the header.
    ``poll_interval`` bounds each sleep on the doorbell (seconds).
    """

    def __init__(self, producer_fd: int, consumer_fd: int, consumer_doorbell_fd: int,
                 producer_doorbell_fd: int, *, control: Optional[socket.socket] = None,
                 entry_count: Optional[int] = None, response_count: Optional[int] = None,
                 poll_interval: float = 0.01) -> None:
        self._fds: List[int] = [producer_fd, consumer_fd, consumer_doorbell_fd, producer_doorbell_fd]
        self._pmm: Optional[mmap.mmap] = None
        self._cmm: Optional[mmap.mmap] = None
        self._p = None
        self._c = None
        self._closed = False
        try:
            psize = _check_region_fd(producer_fd, "producer region", PRODUCER_SEALS, os.O_RDONLY)
            csize = _check_region_fd(consumer_fd, "consumer region", REQUIRED_SEALS, os.O_RDWR)
            _check_doorbell_fd(consumer_doorbell_fd, "consumer doorbell")
            _check_doorbell_fd(producer_doorbell_fd, "producer doorbell")
            for name, size in (("producer", psize), ("consumer", csize)):
                if size > MAX_REGION_SIZE:
                    raise RegionError(f"{name} region: size {size} exceeds {MAX_REGION_SIZE} bytes")
            if psize < A.PRODUCER_HEADER_SIZE:
                raise RegionError(f"producer region: size {psize} is smaller than its "
                                  f"{A.PRODUCER_HEADER_SIZE}-byte header")
            if csize < A.CONSUMER_HEADER_SIZE:
                raise RegionError(f"consumer region: size {csize} is smaller than its "
                                  f"{A.CONSUMER_HEADER_SIZE}-byte header")
            try:
                self._pmm = mmap.mmap(producer_fd, psize, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
                self._cmm = mmap.mmap(consumer_fd, csize, flags=mmap.MAP_SHARED,
                                      prot=mmap.PROT_READ | mmap.PROT_WRITE)
            except OSError as e:
                raise DescriptorError(f"mmap of a region failed: {e.strerror}", e.errno) from None
            header = A.parse_producer_header(self._pmm)
            _validate_header(header, psize, csize, entry_count, response_count)
            self._p = memoryview(self._pmm).cast("I")
            self._c = memoryview(self._cmm).cast("I")
        except BaseException:
            self._release()
            raise
        self.header: A.ProducerHeader = header
        self.producer_region_size = psize
        self.consumer_region_size = csize
        self.entry_count: int = header.entry_count
        self.response_count: int = header.response_count
        self.max_abi: int = header.max_abi
        self.abi: int = A.ABI_NONE
        self.devices: List[int] = []
        self.counters = ConsumerCounters()
        self.poll_interval = poll_interval
        self._control = control
        self._decode = None
        # Our cursors: records read (not necessarily released), released
        # (stored in fault_cons); responses written, committed (resp_prod).
        self._released = self._c[_W_FAULT_CONS]
        self._read_cursor = self._released
        self._resp_committed = self._c[_W_RESP_PROD]
        self._resp_pending = self._resp_committed
        self._next_seq = 0
        _warn_if_weakly_ordered()

    # ------------------------------------------------------------------ setup

    @classmethod
    def from_inherited(cls, first_fd: int = 3, **kwargs) -> "Queue":
        """A queue inherited at ``first_fd`` .. ``first_fd + 3`` (3..6 by default)."""
        return cls(first_fd, first_fd + 1, first_fd + 2, first_fd + 3, **kwargs)

    def negotiate(self, abi: int = A.ABI_V2, timeout: float = 5.0) -> None:
        """Request ``abi`` (1 or 2) and wait until the producer puts it in force.

        Raises ``FaultringError`` with ``EINVAL`` for an ABI outside 1..2,
        ``EPROTONOSUPPORT`` if it exceeds ``max_abi``, ``ETIMEDOUT`` if the
        producer does not answer in time (it ignores a request it refuses),
        ``EPROTO`` if another ABI or unrequested features come into force,
        ``ESHUTDOWN`` if the queue closes first, and :class:`ServiceGone`.
        """
        self._check_open()
        if abi not in (A.ABI_V1, A.ABI_V2):
            raise FaultringError(errno.EINVAL, f"requested abi {abi} is not 1 or 2")
        if abi > self.max_abi:
            raise FaultringError(errno.EPROTONOSUPPORT,
                                 f"requested abi {abi} exceeds the producer's max_abi {self.max_abi}")
        p, c = self._p, self._c
        current = p[_W_ABI]
        if current == A.ABI_NONE:
            c[_W_REQUESTED_FEATURES] = 0
            c[_W_REQUESTED_FEATURES + 1] = 0
            c[_W_REQUESTED_ABI] = abi
            self._ring_producer()
            deadline = time.monotonic() + timeout
            while p[_W_ABI] == A.ABI_NONE:
                if p[_W_STATE] == A.STATE_CLOSED:
                    raise FaultringError(errno.ESHUTDOWN,
                                         "queue closed (state 3) before an ABI came into force")
                if self._control_hung_up():
                    raise ServiceGone("control connection hung up during negotiation")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FaultringError(
                        errno.ETIMEDOUT,
                        f"producer did not put requested_abi {abi} in force within {timeout} s "
                        f"(abi is still 0)")
                # Re-check state, the word the producer stores seq_cst after abi
                # (ABI.md section 5): the one the wake-up argument is made for.
                self._sleep(_W_STATE, A.STATE_STARTING, remaining)
            current = p[_W_ABI]
        if current != abi:
            raise FaultringError(errno.EPROTO, f"producer put abi {current} in force, {abi} was requested")
        features = A.PRODUCER_HEADER.unpack_from(self._pmm)[14]
        if features & ~A.FEATURES_KNOWN:
            raise FaultringError(errno.EPROTO,
                                 f"features_in_force 0x{features:x} were not requested (0 was)")
        self.abi = abi
        self._decode = A.decode_v2 if abi == A.ABI_V2 else A.decode_v1

    # ------------------------------------------------------------- accessors

    @property
    def state(self) -> int:
        """The producer's ``state``: 1 starting, 2 running, 3 closed."""
        self._check_open()
        return self._p[_W_STATE]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    @property
    def doorbell_fd(self) -> int:
        """The consumer doorbell, for an external event loop (``POLLIN`` = a ring)."""
        return self._fds[2]

    def fileno(self) -> int:
        """Same as :attr:`doorbell_fd`, so a queue can go into ``select``/``selectors``."""
        return self._fds[2]

    def readable(self) -> int:
        """How many records wait between the read cursor and ``fault_prod``."""
        self._check_open()
        return (self._p[_W_FAULT_PROD] - self._read_cursor) & _M32

    def producer_counters(self) -> ProducerCounters:
        """The producer's counters (``struct faultring_counters``), read now."""
        self._check_open()
        return ProducerCounters(A.parse_counters(self._pmm))

    def indices(self) -> Dict[str, int]:
        """The four shared indices as they are now (for diagnostics)."""
        self._check_open()
        return {
            "fault_prod": self._p[_W_FAULT_PROD],
            "fault_cons": self._c[_W_FAULT_CONS],
            "resp_prod": self._c[_W_RESP_PROD],
            "resp_cons": self._p[_W_RESP_CONS],
        }

    # --------------------------------------------------------------- records

    def read(self, max_records: Optional[int] = None) -> List[A.Record]:
        """Decode up to ``max_records`` (all, if None) waiting records.

        Returns a list of :class:`~faultring_client.abi.V2Fault` /
        :class:`~faultring_client.abi.V2Lost` (ABI 2) or
        :class:`~faultring_client.abi.V1PageRequest` /
        :class:`~faultring_client.abi.V1Unrecoverable` (ABI 1) records, maybe
        empty. They are copies: the slots stay reserved until :meth:`release`.
        ABI 2 sequence numbers are checked; LOST records and unexplained gaps
        are counted in :attr:`counters`. Raises :class:`ProducerBroken` if
        ``fault_prod`` is more than a ring ahead of ``fault_cons``.
        """
        self._check_open()
        if self._decode is None:
            raise FaultringError(errno.EPROTO, "no ABI in force: call negotiate() first")
        prod = self._p[_W_FAULT_PROD]
        ahead = (prod - self._released) & _M32
        if ahead > self.entry_count:
            raise ProducerBroken(
                f"fault_prod {prod} is {ahead} records ahead of fault_cons {self._released}, "
                f"more than entry_count {self.entry_count}")
        cons = self._read_cursor
        n = (prod - cons) & _M32
        if max_records is not None and n > max_records:
            n = max(0, max_records)
        if n == 0:
            return []
        mm, decode = self._pmm, self._decode
        base, mask = self.header.ring_offset, self.entry_count - 1
        out = [decode(mm, base + ((cons + i) & mask) * 64) for i in range(n)]
        self._read_cursor = (cons + n) & _M32
        self._account(out)
        return out

    def _account(self, records: List[A.Record]) -> None:
        k = self.counters
        k.records += len(records)
        v2 = self.abi == A.ABI_V2
        seq = self._next_seq
        for r in records:
            t = r[0]
            if t == A.FAULT_PAGE_REQ:
                k.page_requests += 1
                if r.is_last_page:
                    k.groups += 1
            elif t == A.FAULT_DMA_UNRECOV:
                k.unrecoverable += 1
            elif t == A.FAULT_LOST and v2:
                # A LOST record's sequence is the previous + 1 + lost_records.
                k.lost_records += 1
                k.lost_reported += r.lost_records
                k.last_total_lost = r.total_lost
                expected = (seq + r.lost_records) & _M32
                if r.sequence != expected or r.first_lost_sequence != seq:
                    self._gap(expected, r.sequence)
                seq = (r.sequence + 1) & _M32
                continue
            else:
                k.unknown_records += 1
                continue
            if v2:
                s = r[1]
                if s != seq:
                    self._gap(seq, s)
                seq = (s + 1) & _M32
        self._next_seq = seq

    def _gap(self, expected: int, got: int) -> None:
        k = self.counters
        k.sequence_gaps += 1
        skipped = (got - expected) & _M32
        if skipped < 0x80000000:
            k.sequence_missing += skipped

    def release(self, n: Optional[int] = None) -> None:
        """Give back ``n`` read records' slots (all read ones, if None): store ``fault_cons``."""
        self._check_open()
        unreleased = (self._read_cursor - self._released) & _M32
        if n is None:
            n = unreleased
        if not 0 <= n <= unreleased:
            raise FaultringError(errno.EINVAL,
                                 f"release({n}): only {unreleased} records are read and not released")
        self._released = (self._released + n) & _M32
        self._c[_W_FAULT_CONS] = self._released

    # ------------------------------------------------------------- responses

    def responses_free(self) -> int:
        """Free response slots now, counting answers written but not committed."""
        self._check_open()
        return self.response_count - ((self._resp_pending - self._load_resp_cons()) & _M32)

    def _load_resp_cons(self) -> int:
        resp_cons = self._p[_W_RESP_CONS]
        if (self._resp_committed - resp_cons) & _M32 > self.response_count:
            raise ProducerBroken(
                f"resp_cons {resp_cons} is not within response_count {self.response_count} "
                f"behind resp_prod {self._resp_committed}")
        return resp_cons

    def answer(self, record: A.Record, code: int = A.RESP_SUCCESS, *,
               check_pasid: bool = False, check_grpid: bool = False, wait: float = 0.0) -> None:
        """Write the response to ``record``'s page-request group into the next slot.

        Answer each group once, normally at its ``LAST_PAGE`` record. ABI 2
        names the group by its cookie (``check_pasid`` / ``check_grpid`` add
        the optional checks); ABI 1 by PASID and PRGI, with ``PASID_VALID``
        iff the request had ``NEEDS_PASID``. The slot is zeroed, then
        written; nothing is published until :meth:`commit`.

        When every slot is taken: with ``wait`` > 0, commit what is pending
        and poll for a free slot up to ``wait`` seconds
        (:meth:`wait_for_response_room`); then, or at once with ``wait`` 0,
        raise :class:`ResponseRingFull`, having written nothing. An
        unconsumed slot is never overwritten.
        """
        self._check_open()
        if code not in (A.RESP_SUCCESS, A.RESP_INVALID, A.RESP_FAILURE):
            raise FaultringError(errno.EINVAL, f"response code {code} is not 0, 1 or 2")
        if self.abi == A.ABI_V2:
            if not isinstance(record, A.V2Fault) or record.type != A.FAULT_PAGE_REQ:
                raise FaultringError(errno.EINVAL, f"answer() needs an ABI 2 page request, got {record!r}")
            body = A.encode_v2_response(record, code, check_pasid, check_grpid)
        elif self.abi == A.ABI_V1:
            if not isinstance(record, A.V1PageRequest):
                raise FaultringError(errno.EINVAL, f"answer() needs an ABI 1 page request, got {record!r}")
            body = A.encode_v1_response(record, code)
        else:
            raise FaultringError(errno.EPROTO, "no ABI in force: call negotiate() first")
        if wait > 0 and self.responses_free() < 1:
            self.wait_for_response_room(wait)
        self._write_response(body)

    def _write_response(self, body: bytes) -> None:
        pending = self._resp_pending
        if (pending - self._load_resp_cons()) & _M32 >= self.response_count:
            self.counters.response_ring_full += 1
            raise ResponseRingFull(
                f"response ring full: {self.response_count} slots taken "
                f"(resp_prod {pending}, resp_cons {self._p[_W_RESP_CONS]})")
        off = self.header.response_ring_offset + (pending & (self.response_count - 1)) * 64
        cmm = self._cmm
        cmm[off:off + 64] = _ZERO_SLOT
        cmm[off:off + len(body)] = body
        self._resp_pending = (pending + 1) & _M32
        self.counters.responses_written += 1

    def commit(self) -> int:
        """Publish the written responses: store ``resp_prod``, then ring the producer.

        The doorbell is rung unconditionally (pure Python cannot fence before
        checking ``producer_sleeping``). Returns how many responses were
        published (0: nothing pending, nothing done).
        """
        self._check_open()
        n = (self._resp_pending - self._resp_committed) & _M32
        if n == 0:
            return 0
        self._c[_W_RESP_PROD] = self._resp_pending
        self._resp_committed = self._resp_pending
        self.counters.responses_committed += n
        self._ring_producer()
        return n

    def wait_for_response_room(self, timeout: float = 1.0, slots: int = 1) -> bool:
        """Commit what is pending, then poll ``resp_cons`` until ``slots`` are free.

        No doorbell announces freed slots, so this polls with bounded sleeps.
        Returns False if the room did not appear within ``timeout``, or the
        queue closed, or the service hung up.
        """
        self.commit()
        deadline = time.monotonic() + timeout
        delay = 0.0002
        while self.responses_free() < slots:
            if self._p[_W_STATE] == A.STATE_CLOSED or self._control_hung_up():
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, self.poll_interval)
        return True

    # ------------------------------------------------------------------ wait

    def wait(self, timeout: Optional[float] = None) -> WaitResult:
        """Wait until records arrive, the queue closes, or the service goes.

        Returns :attr:`WaitResult.RECORDS` as soon as a record is readable
        (records are returned before any end), :attr:`WaitResult.CLOSED`
        when ``state`` is 3 and everything has been read,
        :attr:`WaitResult.SERVICE_GONE` when the control socket hung up with
        the queue still open and drained, or :attr:`WaitResult.TIMEOUT`.
        ``timeout`` None waits for ever. Per the Python rule, the doorbell is
        only slept on for at most :attr:`poll_interval` at a time.
        """
        self._check_open()
        p = self._p
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            cursor = self._read_cursor
            if p[_W_FAULT_PROD] != cursor:
                return WaitResult.RECORDS
            if p[_W_STATE] == A.STATE_CLOSED:
                # The producer writes its last records before state 3.
                return WaitResult.RECORDS if p[_W_FAULT_PROD] != cursor else WaitResult.CLOSED
            if self._control_hung_up():
                if p[_W_STATE] == A.STATE_CLOSED:
                    continue
                return WaitResult.RECORDS if p[_W_FAULT_PROD] != cursor else WaitResult.SERVICE_GONE
            if deadline is None:
                remaining = self.poll_interval
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return WaitResult.TIMEOUT
            self._sleep(_W_FAULT_PROD, cursor, remaining)

    def _sleep(self, word: int, seen: int, remaining: float) -> None:
        """The sleep protocol (ABI.md section 4), bounded by ``poll_interval``.

        The control socket is polled too (no events: only a hang-up wakes),
        so a service that dies wakes the sleeper at once.
        """
        p, c = self._p, self._c
        c[_W_CONSUMER_SLEEPING] = 1
        try:
            if p[word] == seen and p[_W_STATE] != A.STATE_CLOSED:
                self.counters.sleeps += 1
                poller = select.poll()
                poller.register(self._fds[2], select.POLLIN)
                ctl = self._control
                if ctl is not None and ctl.fileno() >= 0:
                    poller.register(ctl.fileno(), 0)
                ms = max(0, int(min(remaining, self.poll_interval) * 1000 + 0.999))
                poller.poll(ms)
                self._drain_doorbell()
        finally:
            c[_W_CONSUMER_SLEEPING] = 0

    def _drain_doorbell(self) -> None:
        fd = self._fds[2]
        while True:
            try:
                if not os.read(fd, 64):
                    return
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    def _ring_producer(self) -> None:
        try:
            os.write(self._fds[3], _ONE)
            self.counters.doorbells_rung += 1
        except BlockingIOError:
            # Rings are already queued; the producer will wake and look.
            self.counters.doorbells_rung += 1
        except OSError:
            self.counters.doorbell_errors += 1

    def _control_hung_up(self) -> bool:
        ctl = self._control
        if ctl is None:
            return False
        fd = ctl.fileno()
        if fd < 0:
            return False
        poller = select.poll()
        poller.register(fd, 0)
        for _fd, events in poller.poll(0):
            if events & _HUP:
                return True
        return False

    def detach_control(self) -> None:
        """Stop watching the control socket (service-gone detection off)."""
        self._control = None

    # ----------------------------------------------------------------- close

    def _check_open(self) -> None:
        if self._closed:
            raise FaultringError(errno.EBADF, "queue is closed")

    def _release(self) -> None:
        for view in (self._p, self._c):
            if view is not None:
                view.release()
        self._p = self._c = None
        for mm in (self._pmm, self._cmm):
            if mm is not None:
                mm.close()
        self._pmm = self._cmm = None
        fds, self._fds = self._fds, [-1, -1, -1, -1]
        for fd in fds:
            if fd >= 0:
                _close_quietly(fd)

    def close(self) -> None:
        """Unmap both regions and close the four descriptors (idempotent).

        Answers written but not committed are dropped. By contract the
        service answers INVALID to every group left unanswered.
        """
        if self._closed:
            return
        self._closed = True
        self._control = None
        self._release()

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._closed:
            return "<faultring Queue closed>"
        return (f"<faultring Queue abi={self.abi} entries={self.entry_count} "
                f"responses={self.response_count} devices={self.devices}>")
