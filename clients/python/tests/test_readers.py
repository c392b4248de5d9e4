"""Fixture and storm-report readers: real files, then corrupted copies."""

from __future__ import annotations

import collections
import copy
import glob
import gzip
import json
import os
import signal
import subprocess
import time
import unittest

from faultring_client import Client, FormatError
from faultring_client.fixtures import FixtureReader, PageEvent, RawEvent, StopEvent, read_fixture
from faultring_client.storm import read_report

from .support import DATA, FAULTRING_BIN, FIXTURES, HAVE_BIN, NO_BIN_REASON, REPO, TempDir

CAPTURE = os.path.join(DATA, "capture-2-devices.json")
REPORTS = [os.path.join(DATA, "storm-steady-report.json"),
           os.path.join(DATA, "storm-steady-compare-direct-report.json")]


class FixtureReaderTests(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = TempDir()
        self.addCleanup(self.tmp.cleanup)

    def test_every_fixture_in_the_library(self) -> None:
        paths = sorted(glob.glob(os.path.join(FIXTURES, "*.json")))
        self.assertGreater(len(paths), 5, FIXTURES)
        for path in paths:
            with self.subTest(fixture=os.path.basename(path)):
                fx = read_fixture(path)
                self.assertEqual(fx.version, 1)
                self.assertEqual(fx.name, os.path.basename(path)[:-5])
                self.assertTrue(fx.devices)
                self.assertEqual(fx.event_count, len(fx.events))
                self.assertGreater(fx.event_count, 0)
                self.assertEqual([e.index for e in fx.events], list(range(fx.event_count)))
                ids = {d.id for d in fx.devices}
                self.assertTrue(all(e.device in ids for e in fx.events))
                self.assertEqual([e.t for e in fx.events], sorted(e.t for e in fx.events))
                self.assertIsNotNone(fx.expected)

    def test_specific_contents(self) -> None:
        fx = read_fixture(os.path.join(FIXTURES, "timeouts.json"))
        self.assertEqual(fx.service.timeout_microseconds, 50000)
        self.assertEqual(fx.consumer.policy, "never")
        self.assertEqual(fx.expected.auto, {"timeout": 6})
        self.assertEqual({(g.code, g.source) for g in fx.expected.groups}, {("invalid", "timeout")})
        first = fx.events[0]
        self.assertIsInstance(first, PageEvent)
        self.assertEqual((first.prgi, first.perm, first.addr, first.last, first.pasid), (0, "r", 0x1000, True, 1))
        stops = read_fixture(os.path.join(FIXTURES, "stop-markers.json"))
        self.assertTrue(any(isinstance(e, StopEvent) for e in stops.events))
        raw = read_fixture(os.path.join(FIXTURES, "smmuv3-stall.json"))
        self.assertTrue(all(isinstance(e, RawEvent) and len(e.words) in (2, 4) for e in raw.events))

    def test_real_capture_and_streaming(self) -> None:
        fx = read_fixture(CAPTURE)
        self.assertEqual(fx.name, "capture")
        self.assertEqual(fx.group_count, 40)
        self.assertEqual(len(fx.expected.groups), 40)
        self.assertEqual({(g.code, g.source) for g in fx.expected.groups}, {("success", "consumer")})
        with FixtureReader(CAPTURE) as reader:
            head = reader.open()
            self.assertEqual([d.id for d in head.devices], [1, 2])
            streamed = list(reader)
            done = reader.finish()
        self.assertEqual(streamed, fx.events)
        self.assertEqual(done.event_count, fx.event_count)
        self.assertEqual(done.expected, fx.expected)

    def test_gzip_capture(self) -> None:
        path = self.tmp.join("capture.json.gz")
        with open(CAPTURE, "rb") as src, gzip.open(path, "wb") as dst:
            dst.write(src.read())
        self.assertEqual(read_fixture(path).events, read_fixture(CAPTURE).events)
        # A damaged compressed stream is refused with the path.
        with open(path, "rb") as f:
            data = f.read()
        bad = self.tmp.join("cut.json.gz")
        with open(bad, "wb") as f:
            f.write(data[: len(data) // 2])
        with self.assertRaises(FormatError) as cm:
            read_fixture(bad)
        self.assertIn(bad, str(cm.exception))

    # -- corrupted copies

    def corrupt(self, text: str) -> FormatError:
        path = self.tmp.join("bad.json")
        with open(path, "w") as f:
            f.write(text)
        with self.assertRaises(FormatError) as cm:
            read_fixture(path)
        self.assertIn(path, str(cm.exception))
        self.assertEqual(cm.exception.path, path)
        return cm.exception

    def capture_doc(self) -> dict:
        with open(CAPTURE) as f:
            return json.load(f)

    def mutated(self, mutate) -> str:
        doc = self.capture_doc()
        mutate(doc)
        return json.dumps(doc)

    def test_corrupted_copies(self) -> None:
        def event(i, **changes):
            def m(doc):
                doc["events"][i].update(changes)
            return m

        def drop(i, key):
            def m(doc):
                del doc["events"][i][key]
            return m

        cases = [
            (event(3, pasid=1 << 20), "events[3].pasid", "out of range"),
            (event(4, prgi=512), "events[4].prgi", "out of range"),
            (event(5, prgi="0xzz"), "events[5].prgi", "not a decimal or 0x-hex"),
            (event(6, last="yes"), "events[6].last", "expected a boolean"),
            (event(7, addr=1.5), "events[7].addr", "fraction"),
            (event(8, addr=-4096), "events[8].addr", "negative"),
            (event(9, colour="blue"), "events[9].colour", "unknown key"),
            (event(10, device=7), "events[10].device", "device 7 is not in \"devices\""),
            (event(11, t=0), "events[11].t", "earlier than the previous event's"),
            (event(12, perm="rq"), "events[12].perm", "'q' is not one of r, w, x, p"),
            (event(13, reason=3), "events[13].reason", "not allowed in a \"page\" event"),
            (event(14, type="teleport"), "events[14].type", "is not page, stop, fault"),
            (drop(15, "prgi"), "events[15].prgi", "missing"),
            (event(16, private=["0x1"]), "events[16].private", "two 64-bit words"),
            (lambda d: d.update(bogus=1), "bogus", "unknown key"),
            (lambda d: d.update(faultringFixture=2), "faultringFixture", "format version 2"),
            (lambda d: d["devices"][1].update(id=1), "devices", "device id 1 appears twice"),
            (lambda d: d["devices"][0]["pasids"].append(1 << 20), "devices[0].pasids[2]", "out of range"),
            (lambda d: d["service"].update(entries=100), "service.entries", "not a power of two"),
            (lambda d: d["consumer"].update(abi=3), "consumer.abi", "3 is not 1 or 2"),
            (lambda d: d["expected"]["groups"][0].update(source="gremlins"), "expected.groups[0].source",
             "is not one of"),
            (lambda d: d["expected"]["auto"].update(meteor=1), "expected.auto.meteor", "unknown key"),
            (lambda d: d.pop("devices"), "events", "\"devices\" must come before \"events\""),
        ]
        for mutate, field, message in cases:
            with self.subTest(field=field):
                e = self.corrupt(self.mutated(mutate))
                self.assertEqual(e.field, field, str(e))
                self.assertIn(f"field \"{field}\"", str(e))
                self.assertIn(message, str(e))

    def test_structural_damage(self) -> None:
        with open(CAPTURE) as f:
            text = f.read()
        e = self.corrupt(text[: len(text) // 2])
        self.assertIn("truncated", str(e))
        e = self.corrupt(text + "\n{}")
        self.assertIn("data after the closing '}'", str(e))
        e = self.corrupt(text.replace('"events": [', '"events": [[', 1))
        self.assertIn("events[0]", str(e))
        doc = self.capture_doc()
        events = doc.pop("events")
        reordered = {"faultringFixture": 1, "events": events, "devices": doc["devices"]}
        e = self.corrupt(json.dumps(reordered))
        self.assertEqual(e.field, "events")
        e = self.corrupt(text.replace('"name": "capture"', '"name": "capture", "name": "again"', 1))
        self.assertIn("appears twice", str(e))
        e = self.corrupt('{"faultringFixture": 1, "devices": []}')
        self.assertEqual(e.field, "events")
        self.assertIn("missing", str(e))
        path = self.tmp.join("latin1.json")
        with open(path, "wb") as f:
            f.write(b'{"faultringFixture": 1, "name": "caf\xe9"}')
        with self.assertRaises(FormatError) as cm:
            read_fixture(path)
        self.assertIn("not UTF-8", str(cm.exception))


@unittest.skipUnless(HAVE_BIN, NO_BIN_REASON)
class LiveCaptureTests(unittest.TestCase):
    def test_capture_written_by_the_service_reads_back(self) -> None:
        tmp = TempDir()
        self.addCleanup(tmp.cleanup)
        sock, out = tmp.join("cap.sock"), tmp.join("capture.json")
        proc = subprocess.Popen([FAULTRING_BIN, "capture", "-o", out, "--socket-path", sock, "--devices", "2",
                                 "--rate", "500", "--groups-per-device", "25", "--log-level", "error"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def reap() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        self.addCleanup(reap)
        client, queue = Client.connect_with_retry(sock, 2, [1, 2], timeout=30)
        self.addCleanup(client.close)
        answered = collections.Counter()
        end = time.monotonic() + 60
        while sum(answered.values()) < 50:
            self.assertLess(time.monotonic(), end, dict(answered))
            queue.wait(1.0)
            for rec in queue.read():
                if rec.is_last_page:
                    queue.answer(rec)
                    answered[rec.device_id] += 1
            queue.release()
            queue.commit()
        self.assertTrue(queue.wait_for_response_room(60, slots=queue.response_count))
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)
        fx = read_fixture(out)
        self.assertEqual(fx.group_count, 50)
        self.assertEqual(len(fx.expected.groups), 50)
        self.assertEqual({(g.code, g.source) for g in fx.expected.groups}, {("success", "consumer")})
        by_device = collections.Counter(fx.events[g.event].device for g in fx.expected.groups)
        self.assertEqual(by_device, answered)


class StormReportTests(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = TempDir()
        self.addCleanup(self.tmp.cleanup)

    def test_real_reports(self) -> None:
        for path in REPORTS:
            with self.subTest(report=os.path.basename(path)):
                r = read_report(path)
                self.assertEqual(r.report_version, 1)
                self.assertEqual(r.name, "steady")
                self.assertTrue(r.passed)
                self.assertEqual(r.exit_status, 0)
                run = r.service_run
                self.assertEqual(run.mode, "service")
                self.assertEqual(run.issued, run.offered)
                self.assertEqual(run.answered, run.issued)
                self.assertTrue(all(l.balances for l in run.ledgers))
                self.assertEqual([p.name for p in run.phases], ["steady"])
                self.assertIsNotNone(run.overall)
                self.assertEqual(run.overall.count, run.answered_by_consumer)
                self.assertEqual(run.totals.lost_records, 0)
                self.assertGreater(run.samples, 0)
        both = read_report(REPORTS[1])
        self.assertEqual([run.mode for run in both.runs], ["service", "direct"])
        self.assertEqual({c.run for c in both.checks}, {"service", "direct"})

    def corrupt(self, mutate, field: str, message: str) -> None:
        with open(REPORTS[0]) as f:
            doc = json.load(f)
        mutate(doc)
        path = self.tmp.join("report.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        with self.assertRaises(FormatError) as cm:
            read_report(path)
        e = cm.exception
        self.assertEqual(e.path, path)
        self.assertEqual(e.field, field, str(e))
        self.assertIn(path, str(e))
        self.assertIn(message, str(e))

    def test_corrupted_copies(self) -> None:
        def run(doc):
            return doc["runs"][0]
        cases = [
            (lambda d: d.update(reportVersion=2), "reportVersion", "report version 2"),
            (lambda d: d.pop("runs"), "runs", "missing"),
            (lambda d: d.update(runs=[]), "runs", "no run"),
            (lambda d: run(d)["totals"].pop("lostRecords"), "runs[0].totals.lostRecords", "missing"),
            (lambda d: run(d)["totals"].update(timeouts="none"), "runs[0].totals.timeouts",
             "expected a non-negative integer"),
            (lambda d: run(d)["ledgers"][0].update(issued=-1), "runs[0].ledgers[0].issued",
             "expected a non-negative integer"),
            (lambda d: run(d)["ledgers"][0]["answeredBy"].update(consumer=1.5),
             "runs[0].ledgers[0].answeredBy.consumer", "non-negative integer"),
            (lambda d: run(d).update(mode="sideways"), "runs[0].mode", "is not service or direct"),
            (lambda d: run(d)["phases"][0]["latency"].pop("p99"), "runs[0].phases[0].latency.p99", "missing"),
            (lambda d: run(d)["overall"]["latency"].update(p50=10 ** 12), "runs[0].overall.latency",
             "percentiles out of order"),
            (lambda d: d["verdict"]["checks"][0].update(kind="vibes"), "verdict.checks[0].kind", "is not one of"),
            (lambda d: d["verdict"]["checks"][0].update(passed="yes"), "verdict.checks[0].passed",
             "expected a boolean"),
            (lambda d: d["profile"].pop("name"), "profile.name", "missing"),
            (lambda d: d.update(kind="vsva"), "kind", "a \"vsva\" storm report"),
        ]
        for mutate, field, message in cases:
            with self.subTest(field=field):
                self.corrupt(mutate, field, message)

    def test_not_json(self) -> None:
        path = self.tmp.join("report.json")
        with open(REPORTS[0]) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text[:1000])
        with self.assertRaises(FormatError) as cm:
            read_report(path)
        self.assertIn(path, str(cm.exception))
        self.assertIn("not a JSON document", str(cm.exception))

    def test_failed_check_sets_its_exit_bit(self) -> None:
        with open(REPORTS[0]) as f:
            doc = json.load(f)
        for check in doc["verdict"]["checks"]:
            if check["kind"] in ("ledger", "latency"):
                check["passed"] = False
        path = self.tmp.join("failed.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        r = read_report(path)
        self.assertFalse(r.passed)
        self.assertEqual(r.exit_status, 1 | 2)
        self.assertEqual({c.kind for c in r.failures}, {"ledger", "latency"})

    @unittest.skipUnless(HAVE_BIN, NO_BIN_REASON)
    def test_live_storm_report(self) -> None:
        out = self.tmp.join("storm")
        proc = subprocess.run([FAULTRING_BIN, "storm", os.path.join(FIXTURES, "storms", "steady.json"),
                               "--seconds", "1", "--rate-scale", "0.1", "-o", out],
                              cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=300)
        r = read_report(os.path.join(out, "report.json"))
        self.assertTrue(all(l.balances for l in r.service_run.ledgers))
        # The runner's exit status is the report's (latency may be masked on a slow machine).
        self.assertEqual(proc.returncode, r.exit_status, proc.stderr[-2000:])


if __name__ == "__main__":
    unittest.main()
