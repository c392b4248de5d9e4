"""Reader of a storm's ``report.json`` (``Docs/STORMS.md``, report version 1).

:func:`read_report` returns a small typed summary: the verdict and its
checks, and per run the totals, the phases' and the overall latency, and
the device ledgers. Everything it keeps is validated; a bad field raises
:class:`~faultring_client.FormatError` naming the file and the field (for
example ``runs[0].totals.lostRecords``). Fields it does not summarise
(samples, histograms, consumers, chaos) are left in :attr:`StormReport.raw`.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

from .errors import FormatError

__all__ = ["REPORT_VERSION", "CHECK_BITS", "StormReport", "Run", "Totals", "Phase", "Latency",
           "Ledger", "Check", "read_report"]

REPORT_VERSION = 1
#: The exit-status bit of each kind of verdict check (STORMS.md "Verdict and exit status").
CHECK_BITS = {"ledger": 1, "latency": 2, "answeredByConsumer": 4, "unanswered": 8, "run": 16,
              "chaos": 32, "memory": 128}
RUN_MODES = ("service", "direct")


@dataclass
class Latency:
    """A latency summary in nanoseconds (``count`` samples)."""

    count: int
    p50: int
    p99: int
    p999: int
    max: int


@dataclass
class Phase:
    """One phase's (or the whole run's) latency."""

    name: str
    latency: Latency


@dataclass
class Totals:
    """The service's totals over a run."""

    lost_records: int
    overflowed_groups: int
    timeouts: int
    auto_responses: Dict[str, int]
    rejections: Dict[str, int]
    events_delivered: int
    events_lost: int


@dataclass
class Ledger:
    """One device's books, as the device process kept them."""

    device: int
    issued: int
    answered: int
    unanswered: int
    answered_twice: int
    wrong: int
    answered_by: Dict[str, int]

    @property
    def balances(self) -> bool:
        """Every group answered exactly once and rightly."""
        return (self.unanswered == 0 and self.answered_twice == 0 and self.wrong == 0
                and self.answered == self.issued)


@dataclass
class Check:
    """One verdict check."""

    kind: str
    run: str
    passed: bool
    detail: str


@dataclass
class Run:
    """One run of the storm: ``service``, or ``direct`` with ``--compare direct``."""

    mode: str
    seconds: float
    offered: int
    totals: Totals
    phases: List[Phase]
    overall: Optional[Latency]
    ledgers: List[Ledger]
    problems: List[str]
    samples: int

    @property
    def issued(self) -> int:
        """Groups the devices raised."""
        return sum(l.issued for l in self.ledgers)

    @property
    def answered(self) -> int:
        """Groups answered, by anyone."""
        return sum(l.answered for l in self.ledgers)

    @property
    def answered_by_consumer(self) -> int:
        """Groups a consumer answered."""
        return sum(l.answered_by.get("consumer", 0) for l in self.ledgers)


@dataclass
class StormReport:
    """The summary of one ``report.json``."""

    path: str
    report_version: int
    name: str
    profile_path: str
    started: str
    runs: List[Run]
    checks: List[Check]
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def passed(self) -> bool:
        """Every check held."""
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> List[Check]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    @property
    def exit_status(self) -> int:
        """What ``faultring storm`` exits with: one bit per kind of failed check."""
        status = 0
        for c in self.failures:
            status |= CHECK_BITS[c.kind]
        return status

    @property
    def service_run(self) -> Run:
        """The service run (always the first)."""
        return self.runs[0]


class _V:
    """A value and where it is, for validation with precise errors."""

    def __init__(self, path: str, value: Any, field: str = "") -> None:
        self.path, self.value, self.field = path, value, field

    def error(self, message: str) -> FormatError:
        return FormatError(self.path, self.field, message)

    def _found(self) -> str:
        v = self.value
        return f"{type(v).__name__} {json.dumps(v)[:60]}" if v is not None else "null"

    def __getitem__(self, key: Union[str, int]) -> "_V":
        name = f"{self.field}[{key}]" if isinstance(key, int) else (f"{self.field}.{key}" if self.field else key)
        if isinstance(key, int):
            return _V(self.path, self.value[key], name)
        if key not in self.value:
            raise FormatError(self.path, name, "missing")
        return _V(self.path, self.value[key], name)

    def get(self, key: str) -> Optional["_V"]:
        return self[key] if key in self.value and self.value[key] is not None else None

    def obj(self) -> "_V":
        if not isinstance(self.value, dict):
            raise self.error(f"expected an object, found {self._found()}")
        return self

    def arr(self) -> List["_V"]:
        if not isinstance(self.value, list):
            raise self.error(f"expected an array, found {self._found()}")
        return [self[i] for i in range(len(self.value))]

    def uint(self) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise self.error(f"expected a non-negative integer, found {self._found()}")
        return v

    def int(self) -> int:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.error(f"expected an integer, found {self._found()}")
        return v

    def number(self) -> float:
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise self.error(f"expected a non-negative number, found {self._found()}")
        return float(v)

    def str(self) -> str:
        if not isinstance(self.value, str):
            raise self.error(f"expected a string, found {self._found()}")
        return self.value

    def bool(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"expected a boolean, found {self._found()}")
        return self.value

    def counts(self) -> Dict[str, int]:
        self.obj()
        return {k: self[k].uint() for k in self.value}


def _latency(v: _V) -> Latency:
    v.obj()
    lat = Latency(v["count"].uint(), v["p50"].uint(), v["p99"].uint(), v["p999"].uint(), v["max"].uint())
    if lat.count and not lat.p50 <= lat.p99 <= lat.p999 <= lat.max:
        raise v.error(f"percentiles out of order: p50 {lat.p50}, p99 {lat.p99}, p999 {lat.p999}, max {lat.max}")
    return lat


def _run(v: _V) -> Run:
    v.obj()
    mode = v["mode"].str()
    if mode not in RUN_MODES:
        raise v["mode"].error(f"\"{mode}\" is not service or direct")
    t = v["totals"].obj()
    totals = Totals(
        lost_records=t["lostRecords"].uint(),
        overflowed_groups=t["overflowedGroups"].uint(),
        timeouts=t["timeouts"].uint(),
        auto_responses=t["autoResponses"].counts(),
        rejections=t["rejections"].counts(),
        events_delivered=t["eventsDelivered"].uint(),
        events_lost=t["eventsLost"].uint(),
    )
    phases = [Phase(p.obj()["name"].str(), _latency(p["latency"])) for p in v["phases"].arr()]
    overall_v = v.get("overall")
    overall = _latency(overall_v.obj()["latency"]) if overall_v is not None else None
    ledgers = []
    for l in v["ledgers"].arr():
        l.obj()
        ledgers.append(Ledger(
            device=l["device"].uint(), issued=l["issued"].uint(), answered=l["answered"].uint(),
            unanswered=l["unanswered"].int(), answered_twice=l["answeredTwice"].uint(),
            wrong=l["wrong"].uint(), answered_by=l["answeredBy"].counts()))
    problems = [p.str() for p in v["problems"].arr()] if "problems" in v.value else []
    samples = len(v["samples"].arr()) if "samples" in v.value else 0
    return Run(mode=mode, seconds=v["seconds"].number(), offered=v["offered"].uint(), totals=totals,
               phases=phases, overall=overall, ledgers=ledgers, problems=problems, samples=samples)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_report(path: Union[str, "os.PathLike[str]"]) -> StormReport:
    """Read and validate a storm ``report.json`` (gzip-compressed too)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, EOFError, OSError) as e:
        # OSError here is gzip.BadGzipFile: a corrupt compressed stream.
        raise FormatError(path, "", f"is not a JSON document: {e}") from None
    root = _V(path, doc).obj()
    if isinstance(doc.get("kind"), str) and doc["kind"] != "arrivals":
        # A vSVA storm's report (STORMS.md "vSVA storms") has guests and devices, not runs.
        raise root["kind"].error(f"a \"{doc['kind']}\" storm report; this reader reads arrival storms' reports")
    version = root["reportVersion"].uint()
    if version != REPORT_VERSION:
        raise root["reportVersion"].error(f"report version {version}; this reader reads version {REPORT_VERSION}")
    profile = root["profile"].obj()
    runs_v = root["runs"].arr()
    if not runs_v:
        raise root["runs"].error("no run")
    runs = [_run(r) for r in runs_v]
    if runs[0].mode != "service":
        raise root["runs"][0]["mode"].error(f"the first run is \"{runs[0].mode}\", not the service run")
    checks = []
    checks_v = root["verdict"].obj()["checks"].arr()
    if not checks_v:
        raise root["verdict"]["checks"].error("no check")
    for c in checks_v:
        c.obj()
        kind = c["kind"].str()
        if kind not in CHECK_BITS:
            raise c["kind"].error(f"\"{kind}\" is not one of {', '.join(CHECK_BITS)}")
        run = c["run"].str()
        if run not in RUN_MODES:
            raise c["run"].error(f"\"{run}\" is not service or direct")
        checks.append(Check(kind, run, c["passed"].bool(), c["detail"].str()))
    return StormReport(path=path, report_version=version, name=profile["name"].str(),
                       profile_path=root["profilePath"].str(), started=root["started"].str(),
                       runs=runs, checks=checks, raw=doc)
