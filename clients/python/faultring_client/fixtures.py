"""Reader of faultring fixtures and captures (``Docs/FIXTURES.md``, format version 1).

A fixture is one JSON document: ``faultringFixture``, ``name``,
``description``, ``service``, ``devices``, ``consumer``, ``events`` and
``expected``. :func:`read_fixture` returns it whole;
:class:`FixtureReader` streams the events one at a time, so a capture of
millions of events is read in bounded memory. A gzip-compressed file (magic
``1f 8b``) is decompressed on the fly.

Everything the format refuses is refused here too, with a
:class:`~faultring_client.FormatError` that names the file, the field (for
example ``events[12].prgi``) and the value.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple, Union

from .errors import FormatError

__all__ = [
    "FORMAT_VERSION",
    "Fixture",
    "FixtureReader",
    "ServiceSettings",
    "Device",
    "ConsumerSettings",
    "Expected",
    "ExpectedGroup",
    "PageEvent",
    "StopEvent",
    "FaultEvent",
    "RawEvent",
    "read_fixture",
]

FORMAT_VERSION = 1
MAX_MICROSECONDS = 86_400_000_000
PASID_MAX = 0xFFFFF
PRGI_MAX = 0x1FF
REASON_MAX = 8
U32_MAX = 0xFFFFFFFF
U64_MAX = 0xFFFFFFFFFFFFFFFF

TOP_KEYS = ("faultringFixture", "name", "description", "service", "devices", "consumer", "events", "expected")
PACES = ("fast", "recorded")
DECODINGS = ("linux", "linux-6.9", "spec", "spec-vtd3")
POLICIES = ("success", "invalid", "failure", "never")
CODES = ("success", "invalid", "failure")
AUTO_CAUSES = ("timeout", "overflow", "detach", "device_removed", "shutdown", "table_full", "no_consumer")
SOURCES = ("consumer",) + AUTO_CAUSES
REJECTION_REASONS = ("unknown", "duplicate", "late", "stale", "foreign_device", "mismatch", "malformed")
RAW_WORDS = {"smmuv3-pri": 2, "smmuv3-event": 4, "vtd-prq": 4}
EVENT_KEYS = ("t", "type", "device", "pasid", "prgi", "perm", "addr", "last", "private", "reason",
              "fetchAddr", "hex")
INTERVAL_KEYS = ("duplicateEvery", "unknownEvery", "mismatchEvery", "staleEvery", "foreignEvery")

_CHUNK = 64 * 1024
_MAX_VALUE = 16 * 1024 * 1024
_HEX_WORD = re.compile(r"(?:0x)?[0-9a-fA-F]{1,16}\Z")


# ----------------------------------------------------------------- records


@dataclass
class ServiceSettings:
    """``service``: every field optional (None: the replay's default)."""

    timeout_microseconds: Optional[int] = None
    pass_failure: Optional[bool] = None
    cookie_table: Optional[int] = None
    entries: Optional[int] = None
    pace: Optional[str] = None
    decoding: Optional[str] = None


@dataclass
class Device:
    """One of ``devices[]``."""

    id: int
    name: str
    pasids: List[int] = field(default_factory=list)
    allocation: int = 256
    needs_pasid: bool = False
    private_data: bool = False


@dataclass
class ConsumerSettings:
    """``consumer``: how the replay's consumer behaves."""

    abi: int = 2
    policy: str = "success"
    delay_microseconds: int = 0
    start_delay_microseconds: int = 0
    crash_after_groups: Optional[int] = None
    duplicate_every: int = 0
    unknown_every: int = 0
    mismatch_every: int = 0
    stale_every: int = 0
    foreign_every: int = 0


class ExpectedGroup(NamedTuple):
    """One of ``expected.groups[]``: the group closed by event ``event``."""

    event: int
    code: str
    source: str


@dataclass
class Expected:
    """``expected``: the outcome a replay must reproduce."""

    groups: List[ExpectedGroup] = field(default_factory=list)
    auto: Dict[str, int] = field(default_factory=dict)
    rejections: Dict[str, int] = field(default_factory=dict)
    lost_records: Optional[int] = None
    faults_delivered: Optional[int] = None


class PageEvent(NamedTuple):
    """A ``page`` event: one page request (``last`` closes its group)."""

    index: int
    t: int
    device: int
    prgi: int
    perm: str
    addr: int
    last: bool
    pasid: Optional[int]
    private: Optional[Tuple[int, int]]
    type: str = "page"


class StopEvent(NamedTuple):
    """A ``stop`` event: a stop marker (no answer is owed)."""

    index: int
    t: int
    device: int
    pasid: int
    type: str = "stop"


class FaultEvent(NamedTuple):
    """A ``fault`` event: an unrecoverable fault."""

    index: int
    t: int
    device: int
    reason: int
    pasid: Optional[int]
    perm: str
    addr: Optional[int]
    fetch_addr: Optional[int]
    type: str = "fault"


class RawEvent(NamedTuple):
    """A raw hardware record (``smmuv3-pri``, ``smmuv3-event``, ``vtd-prq``) as 64-bit words."""

    index: int
    t: int
    device: int
    type: str
    words: Tuple[int, ...]


Event = Union[PageEvent, StopEvent, FaultEvent, RawEvent]


@dataclass
class Fixture:
    """A whole fixture. ``events`` is empty when it came from a streaming
    :class:`FixtureReader` (``event_count`` is always set)."""

    path: str
    version: int = FORMAT_VERSION
    name: str = ""
    description: str = ""
    service: ServiceSettings = field(default_factory=ServiceSettings)
    devices: List[Device] = field(default_factory=list)
    consumer: ConsumerSettings = field(default_factory=ConsumerSettings)
    events: List[Event] = field(default_factory=list)
    expected: Optional[Expected] = None
    event_count: int = 0
    group_count: int = 0

    def device(self, device_id: int) -> Device:
        """The device with this id (``KeyError`` if none)."""
        for d in self.devices:
            if d.id == device_id:
                return d
        raise KeyError(device_id)


# ------------------------------------------------------------- validation


class _Ctx:
    """Where a value sits: file, and a dotted field path."""

    __slots__ = ("path", "field")

    def __init__(self, path: str, field: str = "") -> None:
        self.path = path
        self.field = field

    def child(self, key: Union[str, int]) -> "_Ctx":
        if isinstance(key, int):
            return _Ctx(self.path, f"{self.field}[{key}]")
        return _Ctx(self.path, f"{self.field}.{key}" if self.field else key)

    def error(self, message: str) -> FormatError:
        return FormatError(self.path, self.field, message)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number with a fraction"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _unsigned(v: Any, c: _Ctx, maximum: int = U64_MAX) -> int:
    if isinstance(v, bool):
        raise c.error(f"expected an integer (or a decimal / \"0x...\" string), found {_type_name(v)}")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str):
        text = v
        try:
            if len(text) > 2 and text[:2] in ("0x", "0X"):
                if not re.fullmatch(r"[0-9a-fA-F]+", text[2:]):
                    raise ValueError
                n = int(text[2:], 16)
            else:
                if not re.fullmatch(r"[0-9]+", text):
                    raise ValueError
                n = int(text, 10)
        except ValueError:
            raise c.error(f"\"{v}\" is not a decimal or 0x-hex unsigned integer") from None
    else:
        raise c.error(f"expected an integer (or a decimal / \"0x...\" string), found {_type_name(v)}"
                      + (f" {v!r}" if isinstance(v, float) else ""))
    if n < 0:
        raise c.error(f"{n} is negative")
    if n > maximum:
        raise c.error(f"0x{n:x} is out of range (max 0x{maximum:x})")
    return n


def _bool(v: Any, c: _Ctx) -> bool:
    if not isinstance(v, bool):
        raise c.error(f"expected a boolean, found {_type_name(v)}")
    return v


def _string(v: Any, c: _Ctx) -> str:
    if not isinstance(v, str):
        raise c.error(f"expected a string, found {_type_name(v)}")
    return v


def _array(v: Any, c: _Ctx) -> list:
    if not isinstance(v, list):
        raise c.error(f"expected an array, found {_type_name(v)}")
    return v


def _object(v: Any, c: _Ctx, allowed: Optional[Tuple[str, ...]]) -> dict:
    if not isinstance(v, dict):
        raise c.error(f"expected an object, found {_type_name(v)}")
    if allowed is not None:
        for key in v:
            if key not in allowed:
                raise c.child(key).error(f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return v


def _choice(v: Any, c: _Ctx, choices: Tuple[str, ...]) -> str:
    s = _string(v, c)
    if s not in choices:
        raise c.error(f"\"{s}\" is not one of {', '.join(choices)}")
    return s


def _perm(v: Any, c: _Ctx) -> str:
    s = _string(v, c)
    for ch in s:
        if ch not in "rwxp":
            raise c.error(f"'{ch}' is not one of r, w, x, p")
    return s


def _service(v: Any, c: _Ctx) -> ServiceSettings:
    m = _object(v, c, ("timeoutMicroseconds", "passFailure", "cookieTable", "entries", "pace", "decoding"))
    s = ServiceSettings()
    if "timeoutMicroseconds" in m:
        s.timeout_microseconds = _unsigned(m["timeoutMicroseconds"], c.child("timeoutMicroseconds"), MAX_MICROSECONDS)
    if "passFailure" in m:
        s.pass_failure = _bool(m["passFailure"], c.child("passFailure"))
    if "cookieTable" in m:
        n = _unsigned(m["cookieTable"], c.child("cookieTable"), 1 << 20)
        if n < 1:
            raise c.child("cookieTable").error("must be at least 1")
        s.cookie_table = n
    if "entries" in m:
        n = _unsigned(m["entries"], c.child("entries"), 1 << 20)
        if n < 2 or n & (n - 1):
            raise c.child("entries").error(f"{n} is not a power of two >= 2")
        s.entries = n
    if "pace" in m:
        s.pace = _choice(m["pace"], c.child("pace"), PACES)
    if "decoding" in m:
        s.decoding = _choice(m["decoding"], c.child("decoding"), DECODINGS)
    return s


def _device(v: Any, c: _Ctx) -> Device:
    m = _object(v, c, ("id", "name", "pasids", "allocation", "needsPasid", "privateData"))
    if "id" not in m:
        raise c.child("id").error("missing")
    dev_id = _unsigned(m["id"], c.child("id"), U32_MAX)
    if dev_id < 1:
        raise c.child("id").error("device ids start at 1")
    d = Device(id=dev_id, name=f"device {dev_id}")
    if "name" in m:
        d.name = _string(m["name"], c.child("name"))
    if "pasids" in m:
        pc = c.child("pasids")
        d.pasids = [_unsigned(p, pc.child(i), PASID_MAX) for i, p in enumerate(_array(m["pasids"], pc))]
    if "allocation" in m:
        d.allocation = _unsigned(m["allocation"], c.child("allocation"), 1 << 20)
    if "needsPasid" in m:
        d.needs_pasid = _bool(m["needsPasid"], c.child("needsPasid"))
    if "privateData" in m:
        d.private_data = _bool(m["privateData"], c.child("privateData"))
    return d


def _consumer(v: Any, c: _Ctx) -> ConsumerSettings:
    m = _object(v, c, ("abi", "policy", "delayMicroseconds", "startDelayMicroseconds",
                       "crashAfterGroups") + INTERVAL_KEYS)
    s = ConsumerSettings()
    if "abi" in m:
        s.abi = _unsigned(m["abi"], c.child("abi"), U32_MAX)
        if s.abi not in (1, 2):
            raise c.child("abi").error(f"{s.abi} is not 1 or 2")
    if "policy" in m:
        s.policy = _choice(m["policy"], c.child("policy"), POLICIES)
    if "delayMicroseconds" in m:
        s.delay_microseconds = _unsigned(m["delayMicroseconds"], c.child("delayMicroseconds"))
    if "startDelayMicroseconds" in m:
        s.start_delay_microseconds = _unsigned(m["startDelayMicroseconds"], c.child("startDelayMicroseconds"),
                                               60_000_000)
    if "crashAfterGroups" in m:
        s.crash_after_groups = _unsigned(m["crashAfterGroups"], c.child("crashAfterGroups"))
    for key in INTERVAL_KEYS:
        if key in m:
            attr = re.sub(r"([A-Z])", lambda x: "_" + x.group(1).lower(), key)
            setattr(s, attr, _unsigned(m[key], c.child(key), 1 << 30))
    return s


def _counts(v: Any, c: _Ctx, allowed: Tuple[str, ...]) -> Dict[str, int]:
    m = _object(v, c, allowed)
    return {k: _unsigned(n, c.child(k)) for k, n in m.items()}


def _expected(v: Any, c: _Ctx) -> Expected:
    m = _object(v, c, ("groups", "auto", "rejections", "lostRecords", "faultsDelivered"))
    e = Expected()
    if "groups" in m:
        gc = c.child("groups")
        for i, g in enumerate(_array(m["groups"], gc)):
            ic = gc.child(i)
            gm = _object(g, ic, ("event", "code", "source"))
            for key in ("event", "code", "source"):
                if key not in gm:
                    raise ic.child(key).error("missing")
            e.groups.append(ExpectedGroup(
                _unsigned(gm["event"], ic.child("event"), 0x7FFFFFFF),
                _choice(gm["code"], ic.child("code"), CODES),
                _choice(gm["source"], ic.child("source"), SOURCES)))
    if "auto" in m:
        e.auto = _counts(m["auto"], c.child("auto"), AUTO_CAUSES)
    if "rejections" in m:
        e.rejections = _counts(m["rejections"], c.child("rejections"), REJECTION_REASONS)
    if "lostRecords" in m:
        e.lost_records = _unsigned(m["lostRecords"], c.child("lostRecords"))
    if "faultsDelivered" in m:
        e.faults_delivered = _unsigned(m["faultsDelivered"], c.child("faultsDelivered"))
    return e


def _forbid(m: dict, c: _Ctx, type_name: str, *keys: str) -> None:
    for key in keys:
        if key in m:
            raise c.child(key).error(f"not allowed in a \"{type_name}\" event")


def _event(v: Any, c: _Ctx, index: int, devices: Dict[int, Device]) -> Event:
    m = _object(v, c, EVENT_KEYS)
    if "t" not in m:
        raise c.child("t").error("missing")
    t = _unsigned(m["t"], c.child("t"), MAX_MICROSECONDS)
    if "type" not in m:
        raise c.child("type").error("missing")
    kind = _string(m["type"], c.child("type"))
    if "device" not in m:
        raise c.child("device").error("missing")
    device = _unsigned(m["device"], c.child("device"), U32_MAX)
    if device not in devices:
        raise c.child("device").error(f"device {device} is not in \"devices\"")
    pasid = _unsigned(m["pasid"], c.child("pasid"), PASID_MAX) if "pasid" in m else None
    perm = _perm(m["perm"], c.child("perm")) if "perm" in m else ""
    addr = _unsigned(m["addr"], c.child("addr")) if "addr" in m else None
    if kind == "page":
        _forbid(m, c, kind, "reason", "fetchAddr", "hex")
        if "prgi" not in m:
            raise c.child("prgi").error("missing")
        prgi = _unsigned(m["prgi"], c.child("prgi"), PRGI_MAX)
        last = _bool(m["last"], c.child("last")) if "last" in m else True
        private = None
        if "private" in m:
            pc = c.child("private")
            words = _array(m["private"], pc)
            if len(words) != 2:
                raise pc.error(f"private data is two 64-bit words, found {len(words)}")
            private = (_unsigned(words[0], pc.child(0)), _unsigned(words[1], pc.child(1)))
        if not perm:
            raise c.child("perm").error("a page request asks for r, w or both (missing or empty)")
        return PageEvent(index, t, device, prgi, perm, addr or 0, last, pasid, private)
    if kind == "stop":
        if pasid is None:
            raise c.child("pasid").error("missing: a stop marker carries a PASID")
        _forbid(m, c, kind, "prgi", "perm", "addr", "last", "private", "reason", "fetchAddr", "hex")
        return StopEvent(index, t, device, pasid)
    if kind == "fault":
        _forbid(m, c, kind, "prgi", "last", "private", "hex")
        if "reason" not in m:
            raise c.child("reason").error("missing")
        reason = _unsigned(m["reason"], c.child("reason"), REASON_MAX)
        fetch = _unsigned(m["fetchAddr"], c.child("fetchAddr")) if "fetchAddr" in m else None
        return FaultEvent(index, t, device, reason, pasid, perm, addr, fetch)
    if kind in RAW_WORDS:
        _forbid(m, c, kind, "pasid", "prgi", "perm", "addr", "last", "private", "reason", "fetchAddr")
        if "hex" not in m:
            raise c.child("hex").error("missing")
        hc = c.child("hex")
        parts = _string(m["hex"], hc).split()
        if len(parts) != RAW_WORDS[kind]:
            raise hc.error(f"expected {RAW_WORDS[kind]} space-separated 64-bit words, found {len(parts)}")
        words = []
        for i, part in enumerate(parts):
            if not _HEX_WORD.match(part):
                raise hc.error(f"word {i} \"{part}\" is not a 64-bit hex number")
            words.append(int(part[2:] if part.startswith("0x") else part, 16))
        return RawEvent(index, t, device, kind, tuple(words))
    raise c.child("type").error(
        f"\"{kind}\" is not page, stop, fault, smmuv3-pri, smmuv3-event or vtd-prq")


# ----------------------------------------------------------------- reader


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _pairs(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class FixtureReader:
    """Streams one fixture: ``open()`` reads up to the events, iterating yields
    each validated event, ``finish()`` reads the rest and checks the end.

    ::

        with FixtureReader("capture.json") as reader:
            header = reader.open()
            for event in reader:
                ...
            fixture = reader.finish()   # header + expected, event_count

    Memory is bounded by one event (plus a 64 KiB read buffer).
    """

    def __init__(self, path: Union[str, "os.PathLike[str]"]) -> None:
        self.path = os.fspath(path)
        self.name = self.path
        self._raw = open(self.path, "rb")
        try:
            magic = self._raw.peek(2)[:2] if hasattr(self._raw, "peek") else b""
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb") if magic == b"\x1f\x8b" else self._raw
        except BaseException:
            self._raw.close()
            raise
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_reject_constant)
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._fixture = Fixture(path=self.path)
        self._devices: Dict[int, Device] = {}
        self._seen: set = set()
        self._first_member = True
        self._in_events = False
        self._opened = False
        self._index = 0
        self._last_t = 0
        self._root = _Ctx(self.path)

    # -- input

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = self._stream.read(_CHUNK)
        except (OSError, EOFError) as e:
            # gzip: a corrupt or truncated stream
            raise self._root.error(f"cannot be read: {e}") from None
        try:
            text = self._utf8.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            raise self._root.error(f"is not UTF-8 ({e.reason})") from None
        if not chunk:
            self._eof = True
        if self._pos > _CHUNK:
            self._buf = self._buf[self._pos:]
            self._pos = 0
        self._buf += text
        return True

    def _peek(self) -> Optional[str]:
        while True:
            buf, pos = self._buf, self._pos
            n = len(buf)
            while pos < n and buf[pos] in " \t\r\n":
                pos += 1
            self._pos = pos
            if pos < n:
                return buf[pos]
            if not self._fill():
                return None

    def _expect(self, ch: str, what: str, c: _Ctx) -> None:
        got = self._peek()
        if got != ch:
            found = "the end of the file (truncated)" if got is None else repr(got)
            raise c.error(f"expected {what}, found {found}")
        self._pos += 1

    def _value(self, c: _Ctx) -> Any:
        if self._peek() is None:
            raise c.error("expected a value, found the end of the file (truncated)")
        start_len = len(self._buf) - self._pos
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
                if end < len(self._buf) or self._eof:
                    self._pos = end
                    return value
            except _DuplicateKey as e:
                raise c.error(f"key \"{e.key}\" appears twice in one object") from None
            except ValueError as e:
                if self._eof:
                    msg = getattr(e, "msg", str(e))
                    raise c.error(f"invalid JSON: {msg}"
                                  + (" (truncated file)" if getattr(e, "pos", 0) >= len(self._buf) - 1 else ""))\
                        from None
            if len(self._buf) - self._pos - start_len > _MAX_VALUE:
                raise c.error(f"a value longer than {_MAX_VALUE} bytes, or invalid JSON")
            self._fill()

    def _key(self, c: _Ctx) -> str:
        if self._peek() != '"':
            got = self._peek()
            raise c.error("expected a key string, found " + ("the end of the file (truncated)" if got is None
                                                             else repr(got)))
        key = self._value(c)
        self._expect(":", "':' after a key", c)
        return key

    # -- structure

    def open(self) -> Fixture:
        """Read everything before ``events`` (which needs ``devices`` first)."""
        if self._opened:
            return self._fixture
        self._opened = True
        self._expect("{", "'{' opening the fixture", self._root)
        self._members(until_events=True)
        if not self._in_events:
            raise self._root.child("events").error("missing")
        return self._fixture

    def __iter__(self) -> Iterator[Event]:
        self.open()
        while True:
            event = self.next_event()
            if event is None:
                return
            yield event

    def next_event(self) -> Optional[Event]:
        """The next event, or None after the last one."""
        if not self._in_events:
            return None
        ctx = self._root.child("events")
        if self._peek() == "]":
            self._pos += 1
            self._in_events = False
            return None
        if self._index > 0:
            self._expect(",", f"',' or ']' after event {self._index - 1}", ctx)
        ec = ctx.child(self._index)
        event = _event(self._value(ec), ec, self._index, self._devices)
        if event.t < self._last_t:
            raise ec.child("t").error(f"{event.t} is earlier than the previous event's {self._last_t}")
        self._last_t = event.t
        self._index += 1
        if isinstance(event, PageEvent) and event.last:
            self._fixture.group_count += 1
        return event

    def finish(self) -> Fixture:
        """Skip any events left, read the members after them, check the end."""
        self.open()
        while self.next_event() is not None:
            pass
        self._members(until_events=False)
        if self._peek() is not None:
            raise self._root.error("data after the closing '}'")
        for key in ("faultringFixture", "devices", "events"):
            if key not in self._seen:
                raise self._root.child(key).error("missing")
        f = self._fixture
        f.event_count = self._index
        if f.expected is not None:
            for i, g in enumerate(f.expected.groups):
                if g.event >= self._index:
                    raise self._root.child("expected").child("groups").child(i).child("event").error(
                        f"event {g.event} is beyond the last event ({self._index - 1})")
        return f

    def _members(self, until_events: bool) -> None:
        root = self._root
        while True:
            if self._peek() == "}":
                self._pos += 1
                return
            if not self._first_member:
                self._expect(",", "',' or '}'", root)
            self._first_member = False
            name = self._key(root)
            c = root.child(name)
            if name not in TOP_KEYS:
                raise c.error(f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})")
            if name in self._seen:
                raise c.error("appears twice")
            self._seen.add(name)
            if name == "events":
                if "devices" not in self._seen:
                    raise c.error("\"devices\" must come before \"events\"")
                self._expect("[", "'[' opening the events", c)
                self._in_events = True
                if until_events:
                    return
                while self.next_event() is not None:
                    pass
                continue
            value = self._value(c)
            f = self._fixture
            if name == "faultringFixture":
                version = _unsigned(value, c)
                if version != FORMAT_VERSION:
                    raise c.error(f"format version {version}; this reader reads version {FORMAT_VERSION}")
                f.version = version
            elif name == "name":
                f.name = _string(value, c)
            elif name == "description":
                f.description = _string(value, c)
            elif name == "service":
                f.service = _service(value, c)
            elif name == "devices":
                f.devices = [_device(d, c.child(i)) for i, d in enumerate(_array(value, c))]
                for d in f.devices:
                    if d.id in self._devices:
                        raise c.error(f"device id {d.id} appears twice")
                    self._devices[d.id] = d
            elif name == "consumer":
                f.consumer = _consumer(value, c)
            else:
                f.expected = _expected(value, c)

    def close(self) -> None:
        """Close the file."""
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> "FixtureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_fixture(path: Union[str, "os.PathLike[str]"]) -> Fixture:
    """Read and validate a whole fixture or capture, events included."""
    with FixtureReader(path) as reader:
        fixture = reader.open()
        events = list(reader)
        fixture = reader.finish()
        fixture.events = events
        return fixture
