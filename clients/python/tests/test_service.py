"""Against a real ``faultring serve --devices 4 --rate 2000`` (ids 1..4).

Every wait is bounded; nothing asserts on speed. The service is stopped
(SIGTERM, then SIGKILL) and reaped in a cleanup, even when a test fails.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import signal
import socket
import threading
import time
import unittest
from typing import Dict

from faultring_client import Client, FaultringError, Queue, ServiceGone, WaitResult
from faultring_client import abi as A

from .support import HAVE_BIN, NO_BIN_REASON, ServiceProcess, TempDir, open_fds

LIMIT = 60.0  # the bound on any one phase; a slow debug build needs far less


def consume(queue: Queue, answered: Dict[int, int], *, device_of=None, skip=lambda rec: False) -> int:
    """Read what is there, answer every closed group SUCCESS, release, commit."""
    records = queue.read()
    for rec in records:
        if rec.is_last_page and not skip(rec):
            queue.answer(rec, A.RESP_SUCCESS, wait=LIMIT)
            answered[device_of(rec) if device_of else rec.device_id] += 1
    queue.release()
    queue.commit()
    return len(records)


def settle(queue: Queue) -> None:
    """Wait (bounded) until the producer has taken every committed response."""
    queue.commit()
    if not queue.wait_for_response_room(LIMIT, slots=queue.response_count):
        raise AssertionError(f"producer did not consume the responses: {queue.indices()}")


@unittest.skipUnless(HAVE_BIN, NO_BIN_REASON)
class ServiceTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = TempDir()
        self.addCleanup(self.tmp.cleanup)
        self.path = self.tmp.join("fr.sock")
        self.service = self.start_service()

    def start_service(self) -> ServiceProcess:
        service = ServiceProcess(self.path, devices=4, rate=2000)
        self.addCleanup(service.stop)
        return service.start()

    def connect(self) -> Client:
        client = Client.connect(self.path, timeout=10.0, client_name="faultring_client tests")
        self.addCleanup(client.close)
        return client


class LedgerTests(ServiceTestCase):
    def test_answers_balance_the_ledger(self) -> None:
        answered: Dict[int, int] = collections.Counter()
        a = self.connect()
        self.assertEqual(a.capabilities["protocolVersion"], 1)
        self.assertIn(2, a.capabilities["abis"])
        qa = a.attach(2, [1, 2, 3, 4])
        self.assertEqual(qa.abi, 2)
        self.assertEqual(qa.state, A.STATE_RUNNING)

        # Phase 1: ABI 2, devices 1..4, until each device has had groups answered.
        end = time.monotonic() + LIMIT
        while min(answered[d] for d in (1, 2, 3, 4)) < 100:
            self.assertLess(time.monotonic(), end, f"too few groups arrived: {dict(answered)}")
            qa.wait(1.0)
            consume(qa, answered)
        phase1 = dict(answered)

        # Hand devices 3 and 4 to ABI 1 queues, one connection each (an ABI 1
        # queue serves one device). The simulated odd devices set NEEDS_PASID,
        # the even ones do not: both ABI 1 answer forms are exercised. First
        # let the producer take every answer, so none of ours races the DETACH.
        settle(qa)
        a.detach([3, 4])
        self.assertEqual(a.devices, [1, 2])
        abi1 = {}
        for dev in (3, 4):
            client = self.connect()
            abi1[dev] = client, client.attach(1, [dev])
            self.assertEqual(abi1[dev][1].abi, 1)
        # Groups of 3 and 4 still in queue A were answered INVALID by the
        # DETACH ("detach"): queue A must not answer them now.
        detached = lambda rec: rec.device_id in (3, 4)  # noqa: E731
        needs_pasid = collections.Counter()

        # Phase 2: all three queues, until each ABI 1 queue has answered plenty.
        end = time.monotonic() + LIMIT
        while min(answered[d] - phase1[d] for d in (3, 4)) < 100:
            self.assertLess(time.monotonic(), end, f"too few ABI 1 groups: {dict(answered)}")
            abi1[3][1].wait(0.05)
            for dev, (_, q) in abi1.items():
                for rec in q.read():
                    if rec.is_last_page:
                        needs_pasid[dev, rec.needs_pasid] += 1
                        q.answer(rec, A.RESP_SUCCESS, wait=LIMIT)
                        answered[dev] += 1
                q.release()
                q.commit()
            consume(qa, answered, skip=detached)
        self.assertGreater(needs_pasid[3, True], 0, needs_pasid)
        self.assertGreater(needs_pasid[4, False], 0, needs_pasid)

        # Stop answering; let the producer take everything; detach all.
        queues = [(qa, sum(phase1.values()) + answered[1] - phase1[1] + answered[2] - phase1[2])]
        queues += [(abi1[dev][1], answered[dev] - phase1[dev]) for dev in (3, 4)]
        for q, _ in queues:
            settle(q)
        for client in [a] + [c for c, _ in abi1.values()]:
            client.detach()
        self.assertEqual(a.devices, [])

        stats = a.stats()
        self.assertEqual(stats["statsVersion"], 1)
        devices = {d["id"]: d for d in stats["devices"]}
        for dev in (1, 2, 3, 4):
            d = devices[dev]
            with self.subTest(device=dev):
                self.assertEqual(d["answeredTwiceOrUnknown"], 0)
                self.assertEqual(d["wrong"], 0)
                self.assertEqual(d["issued"], d["answered"] + d["outstanding"])
                self.assertEqual(d["answersBySource"].get("consumer", 0), answered[dev],
                                 f"service books {d} vs our answers {dict(answered)}")
        self.assertEqual(stats["pageRequests"]["completedByConsumer"], sum(answered.values()))

        # The producer regions' counters: every answer valid, and matched.
        for q, n in queues:
            with self.subTest(abi=q.abi, devices=q.devices):
                counters = q.producer_counters()
                self.assertEqual(counters.validation_failures(), {})
                self.assertEqual(counters.match_failures(), {})
                self.assertEqual(counters["responses_valid"], n)
                self.assertEqual(counters["match_completed"], n)
                self.assertEqual(q.counters.responses_committed, n)
                self.assertEqual(q.counters.sequence_gaps, 0)
                self.assertEqual(counters["records_lost"], q.counters.lost_reported)

        text = a.stats_prometheus()
        self.assertIn("# TYPE", text)
        a.bye()
        # Records still in the ring come first, then the end.
        end = time.monotonic() + LIMIT
        while qa.wait(1.0) == WaitResult.RECORDS:
            self.assertLess(time.monotonic(), end)
            qa.read()
            qa.release()
        self.assertEqual(qa.wait(0), WaitResult.CLOSED)

    def test_descriptors_are_close_on_exec(self) -> None:
        a = self.connect()
        q = a.attach(2, [1])
        for fd in [a.fileno(), q.doorbell_fd] + list(q._fds):
            self.assertTrue(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, fd)

    def test_client_from_an_inherited_fd(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.connect(self.path)
        client = Client.from_fd(sock.detach())
        self.addCleanup(client.close)
        self.assertEqual(client.capabilities["devices"], [1, 2, 3, 4])
        queue = client.attach(2, [2])
        self.assertEqual(queue.wait(LIMIT), WaitResult.RECORDS)
        self.assertTrue(all(r.device_id == 2 for r in queue.read() if r.type != A.FAULT_LOST))

    def test_service_errors_surface_errno_and_reason(self) -> None:
        a = self.connect()
        with self.assertRaises(FaultringError) as cm:
            a.attach(2, [9])
        self.assertEqual(cm.exception.errno, errno.ENOENT)
        self.assertIn("9", cm.exception.reason)
        with self.assertRaises(FaultringError) as cm:
            a.attach(1, [1, 2])
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        a.attach(2, [1])
        b = self.connect()
        with self.assertRaises(FaultringError) as cm:
            b.attach(2, [1])
        self.assertEqual(cm.exception.errno, errno.EBUSY)
        # The connection survives every refusal.
        self.assertEqual(b.stats()["statsVersion"], 1)

    def test_second_attach_adds_devices_to_the_same_queue(self) -> None:
        a = self.connect()
        q1 = a.attach(2, [1])
        q2 = a.attach(2, [2, 3])
        self.assertIs(q1, q2)
        self.assertEqual(q1.devices, [1, 2, 3])
        seen = set()
        end = time.monotonic() + LIMIT
        while seen != {1, 2, 3}:
            self.assertLess(time.monotonic(), end, f"devices seen: {seen}")
            q1.wait(1.0)
            seen.update(r.device_id for r in q1.read() if r.type != A.FAULT_LOST)
            q1.release()


class EndOfServiceTests(ServiceTestCase):
    def drain_until_end(self, queue: Queue) -> WaitResult:
        end = time.monotonic() + LIMIT
        while time.monotonic() < end:
            result = queue.wait(1.0)
            if result in (WaitResult.CLOSED, WaitResult.SERVICE_GONE):
                return result
            queue.read()
            queue.release()
        self.fail("the queue never ended")

    def run_some(self, queue: Queue) -> None:
        answered = collections.Counter()
        end = time.monotonic() + LIMIT
        while sum(answered.values()) < 20:
            self.assertLess(time.monotonic(), end)
            queue.wait(1.0)
            consume(queue, answered)

    def test_sigterm_closes_the_queue(self) -> None:
        client = self.connect()
        queue = client.attach(2, [1, 2])
        self.run_some(queue)
        self.service.send_signal(signal.SIGTERM)
        self.assertEqual(self.drain_until_end(queue), WaitResult.CLOSED)
        self.assertEqual(queue.state, A.STATE_CLOSED)
        self.assertEqual(self.service.wait(LIMIT), 0)
        with self.assertRaises(ServiceGone):
            client.stats()

    def test_sigkill_is_service_gone(self) -> None:
        client = self.connect()
        queue = client.attach(2, [1, 2])
        self.run_some(queue)
        self.service.send_signal(signal.SIGKILL)
        self.assertEqual(self.drain_until_end(queue), WaitResult.SERVICE_GONE)
        self.assertNotEqual(queue.state, A.STATE_CLOSED)
        self.service.wait(LIMIT)
        with self.assertRaises(ServiceGone):
            client.stats()


class ReconnectTests(ServiceTestCase):
    def test_reconnect_after_restart_on_the_same_path(self) -> None:
        client = self.connect()
        queue = client.attach(2, [1, 2])
        answered = collections.Counter()
        end = time.monotonic() + LIMIT
        while sum(answered.values()) < 20:
            self.assertLess(time.monotonic(), end)
            queue.wait(1.0)
            consume(queue, answered)
        fds_with_queue = len(open_fds())

        # Kill the service outright (the socket file stays behind), and
        # restart it on the same path only after the client started retrying.
        self.service.send_signal(signal.SIGKILL)
        self.service.wait(LIMIT)
        restarted = []

        def restart() -> None:
            time.sleep(0.3)
            restarted.append(self.start_service())

        starter = threading.Thread(target=restart)
        starter.start()
        try:
            new_queue = client.reconnect(timeout=LIMIT)
        finally:
            starter.join(LIMIT)
        self.assertTrue(restarted)
        self.assertIsNot(new_queue, queue)
        self.assertTrue(queue.closed)
        self.assertEqual(new_queue.abi, 2)
        self.assertEqual(client.devices, [1, 2])
        self.assertEqual(len(open_fds()), fds_with_queue, "old descriptors not closed")

        answered = collections.Counter()
        end = time.monotonic() + LIMIT
        while answered[1] < 10 or answered[2] < 10:
            self.assertLess(time.monotonic(), end, f"{dict(answered)}")
            new_queue.wait(1.0)
            consume(new_queue, answered)
        settle(new_queue)
        client.detach()
        books = {d["id"]: d for d in client.stats()["devices"]}
        for dev in (1, 2):
            self.assertEqual(books[dev]["answersBySource"].get("consumer", 0), answered[dev])
            self.assertEqual(books[dev]["answeredTwiceOrUnknown"], 0)

    def test_connect_with_retry_gives_up_at_the_deadline(self) -> None:
        self.service.stop()
        with self.assertRaises(FaultringError) as cm:
            Client.connect_with_retry(self.path, 2, [1], timeout=0.3)
        self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)
        self.assertIn(self.path, str(cm.exception))


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(HAVE_BIN, NO_BIN_REASON)
class NestedTests(ServiceTestCase):
    """The nested IOMMU's calls against ``faultring serve --dma-devices``."""

    def start_service(self) -> ServiceProcess:
        service = ServiceProcess(self.path, devices=2, rate=2000,
                                 extra=["--dma-devices", "--dma-pasids", "1", "--dma-step-us", "500"])
        self.addCleanup(service.stop)
        return service.start()

    def refused(self, errno_value: int, call, *args, **kwargs) -> None:
        with self.assertRaises(FaultringError) as cm:
            call(*args, **kwargs)
        self.assertEqual(cm.exception.errno, errno_value, str(cm.exception))

    def test_bind_invalidate_msi_unbind_and_refusals(self) -> None:
        from faultring_client import protocol as P
        client = self.connect()
        gpa = 1 << 30
        entry = [1 | 3 << 6, 1, gpa, 0, 0, 0, 0, 0]  # present, nested, DID 1, an empty first stage at gpa
        self.refused(errno.EPERM, client.bind_vtd_pasid, 1, entry, [1])  # holds no device yet
        queue = client.attach(2, [1])
        unsealed = os.memfd_create("guest-ram", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        ram = os.memfd_create("guest-ram", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        for fd in (unsealed, ram):
            self.addCleanup(os.close, fd)
            os.ftruncate(fd, 1 << 20)
        fcntl.fcntl(ram, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
        self.refused(errno.EBADF, client.add_guest_memory, unsealed, gpa, 1 << 20)
        client.add_guest_memory(ram, gpa, 1 << 20)
        self.refused(errno.EEXIST, client.add_guest_memory, ram, gpa + 4096, 4096)
        self.refused(errno.EPERM, client.bind_vtd_pasid, 1, entry, [2])  # not held
        client.bind_vtd_pasid(1, entry, [1])

        # Device 1's stream on PASID 1 now misses in the empty table: page requests.
        requests, end = 0, time.monotonic() + LIMIT
        while requests < 3:
            self.assertLess(time.monotonic(), end, f"{requests} page requests through the bound table")
            if queue.wait(0.1) != WaitResult.RECORDS:
                continue
            for rec in queue.read():
                if rec.is_last_page:
                    self.assertEqual((rec.device_id, rec.pasid), (1, 1))
                    queue.answer(rec, A.RESP_INVALID, wait=LIMIT)
                    requests += 1
            queue.release()
            queue.commit()

        client.invalidate(P.INV_PASID, pasid=1)
        client.invalidate(P.INV_RANGE, pasid=1, address=0x10000, size=0x1000, leaf=True)
        self.refused(errno.EINVAL, client.invalidate, P.INV_RANGE, pasid=1, address=0x10000, size=3000)
        self.refused(errno.EPERM, client.invalidate, P.INV_DEVICE_TLB, device=2)
        self.refused(errno.ENOENT, client.invalidate, P.INV_PASID, pasid=7)
        client.bind_msi(0xFEE00000, 0xFEE00000, 4096)
        self.refused(errno.EBUSY, client.bind_msi, 0xFEE00000, 0xFEE00000, 4096)
        client.unbind_msi(0xFEE00000)
        client.unbind(P.BIND_VTD_PASID, 1, [1])
        client.unbind(P.BIND_VTD_PASID, 1, [1])  # cannot fail
        mine = [c for c in client.stats()["clients"] if c["pid"] == os.getpid()]
        self.assertEqual(len(mine), 1)
        nested = mine[0]["nested"]
        self.assertEqual((nested["binds"], nested["unbinds"]), (1, 1))
        self.assertEqual((nested["invalidations"].get("pasid"), nested["invalidations"].get("range")), (1, 1))
