"""Queue against a producer played by the test (regions and doorbells made here)."""

from __future__ import annotations

import errno
import os
import socket
import unittest

from faultring_client import (
    ProducerBroken,
    Queue,
    RegionError,
    ResponseRingFull,
    V1PageRequest,
    V2Fault,
    V2Lost,
    WaitResult,
)
from faultring_client import abi as A

from .support import FakeQueueFiles, open_fds, v1_page_request, v2_lost, v2_record


class QueueTestCase(unittest.TestCase):
    def setUp(self) -> None:
        # Registered first, so it runs after every other cleanup.
        before = open_fds()
        self.addCleanup(lambda: self.assertEqual(open_fds(), before, "descriptors leaked"))

    def make(self, abi: int = 2, entry_count: int = 16, response_count: int = 8, control=None):
        fq = FakeQueueFiles(entry_count, response_count)
        self.addCleanup(fq.close)
        q = Queue(*fq.consumer_fds(), control=control, entry_count=entry_count, response_count=response_count,
                  poll_interval=0.005)
        self.addCleanup(q.close)
        fq.start_negotiation_thread()
        q.negotiate(abi, timeout=10)
        return fq, q


class NegotiationTests(QueueTestCase):
    def test_negotiates_abi2_and_writes_request(self) -> None:
        fq, q = self.make(2)
        self.assertEqual(q.abi, 2)
        self.assertEqual(fq.c[A.C_REQUESTED_ABI // 4], 2)
        self.assertEqual(q.state, A.STATE_RUNNING)
        # The request was announced on the producer doorbell, unconditionally.
        self.assertGreaterEqual(fq.producer_doorbell_rings(), 1)

    def test_abi_above_max_refused(self) -> None:
        fq = FakeQueueFiles(header={"max_abi": 1})
        self.addCleanup(fq.close)
        q = Queue(*fq.consumer_fds())
        self.addCleanup(q.close)
        with self.assertRaises(OSError) as cm:
            q.negotiate(2, timeout=1)
        self.assertEqual(cm.exception.errno, errno.EPROTONOSUPPORT)
        self.assertIn("max_abi 1", str(cm.exception))

    def test_negotiation_times_out_when_producer_ignores_it(self) -> None:
        fq = FakeQueueFiles()
        self.addCleanup(fq.close)
        q = Queue(*fq.consumer_fds(), poll_interval=0.005)
        self.addCleanup(q.close)
        with self.assertRaises(OSError) as cm:
            q.negotiate(2, timeout=0.1)
        self.assertEqual(cm.exception.errno, errno.ETIMEDOUT)


class RecordTests(QueueTestCase):
    def test_decodes_v2_records_and_counts_groups(self) -> None:
        fq, q = self.make(2)
        fq.publish([v2_record(0, flags=A.V2_PASID_VALID, pasid=7, grpid=3, cookie=99),
                    v2_record(1, flags=A.V2_PASID_VALID | A.V2_LAST_PAGE, pasid=7, grpid=3, cookie=99),
                    v2_record(2, type=A.FAULT_DMA_UNRECOV, reason=6, addr=0xdead000,
                              flags=A.V2_ADDR_VALID)])
        self.assertEqual(q.wait(1), WaitResult.RECORDS)
        recs = q.read()
        self.assertEqual(len(recs), 3)
        self.assertIsInstance(recs[0], V2Fault)
        self.assertEqual((recs[1].cookie, recs[1].pasid, recs[1].grpid), (99, 7, 3))
        self.assertTrue(recs[1].is_last_page)
        self.assertFalse(recs[0].is_last_page)
        self.assertEqual((recs[2].type, recs[2].reason, recs[2].addr), (A.FAULT_DMA_UNRECOV, 6, 0xdead000))
        self.assertEqual((q.counters.groups, q.counters.page_requests, q.counters.unrecoverable), (1, 2, 1))
        # Nothing released yet: fault_cons unchanged until release().
        self.assertEqual(fq.c[A.C_FAULT_CONS // 4], 0)
        q.release(2)
        self.assertEqual(fq.c[A.C_FAULT_CONS // 4], 2)
        q.release()
        self.assertEqual(fq.c[A.C_FAULT_CONS // 4], 3)
        with self.assertRaises(OSError):
            q.release(1)

    def test_read_max_and_wraparound(self) -> None:
        fq, q = self.make(2, entry_count=4)
        seq = 0
        for _ in range(5):
            fq.publish([v2_record(seq + i) for i in range(3)])
            got = q.read(2) + q.read(10)
            self.assertEqual([r.sequence for r in got], [seq, seq + 1, seq + 2])
            q.release()
            seq += 3
        self.assertEqual(q.counters.sequence_gaps, 0)

    def test_lost_records_and_gaps_are_counted(self) -> None:
        fq, q = self.make(2)
        # 0, 1; 3 dropped (2, 3, 4) then LOST with sequence 2 + 3 = 5; 6; then 8 (7 missing).
        fq.publish([v2_record(0), v2_record(1), v2_lost(5, 3, 2, 3), v2_record(6), v2_record(8)])
        recs = q.read()
        self.assertIsInstance(recs[2], V2Lost)
        self.assertEqual((recs[2].lost_records, recs[2].first_lost_sequence, recs[2].total_lost), (3, 2, 3))
        k = q.counters
        self.assertEqual((k.lost_records, k.lost_reported, k.last_total_lost), (1, 3, 3))
        self.assertEqual((k.sequence_gaps, k.sequence_missing), (1, 1))
        self.assertEqual(k.records, 5)

    def test_broken_producer_raises(self) -> None:
        fq, q = self.make(2, entry_count=4)
        fq.p[A.P_FAULT_PROD // 4] = 5  # five records in a four-entry ring
        with self.assertRaises(ProducerBroken) as cm:
            q.read()
        self.assertIn("fault_prod 5", str(cm.exception))
        self.assertEqual(cm.exception.errno, errno.EPROTO)

    def test_v1_records(self) -> None:
        fq, q = self.make(1)
        fq.publish([v1_page_request(A.V1_PRQ_PASID_VALID | A.V1_PRQ_LAST_PAGE | A.V1_PRQ_PRIV_DATA, 5, 17,
                                    private=(0x1122, 0x3344)),
                    A.V1_UNRECOVERABLE.pack(A.FAULT_DMA_UNRECOV, 0, 7, A.V1_UNRECOV_ADDR_VALID, 0, 2,
                                            0xabc000, 0)])
        recs = q.read()
        self.assertIsInstance(recs[0], V1PageRequest)
        self.assertEqual((recs[0].pasid, recs[0].grpid, recs[0].private_data), (5, 17, (0x1122, 0x3344)))
        self.assertTrue(recs[0].is_last_page)
        self.assertEqual((recs[1].reason, recs[1].addr, recs[1].perm), (7, 0xabc000, 2))


class ResponseTests(QueueTestCase):
    def test_v2_response_layout(self) -> None:
        fq, q = self.make(2)
        # A dirty slot must be zeroed before the response is written.
        fq.cmm[4096:4096 + 64] = b"\xff" * 64
        fq.publish([v2_record(0, flags=A.V2_LAST_PAGE | A.V2_NEEDS_PASID | A.V2_PASID_VALID, pasid=9,
                              grpid=4, cookie=0x123456789)])
        (rec,) = q.read()
        q.answer(rec, A.RESP_INVALID)
        self.assertEqual(fq.c[A.C_RESP_PROD // 4], 0, "nothing is published before commit()")
        self.assertEqual(q.commit(), 1)
        self.assertEqual(fq.c[A.C_RESP_PROD // 4], 1)
        slot = fq.response_slot(0)
        self.assertEqual(A.V2_RESPONSE.unpack_from(slot), (32, 2, 0, 1, 0x123456789, 0, 0))
        self.assertEqual(slot[32:], bytes(32))

    def test_v2_optional_checks(self) -> None:
        fq, q = self.make(2)
        fq.publish([v2_record(0, flags=A.V2_LAST_PAGE | A.V2_PASID_VALID, pasid=9, grpid=4, cookie=5)])
        (rec,) = q.read()
        q.answer(rec, check_pasid=True, check_grpid=True)
        q.commit()
        self.assertEqual(A.V2_RESPONSE.unpack_from(fq.response_slot(0)),
                         (32, 2, A.RESP_PASID_VALID | A.RESP_GRPID_VALID, 0, 5, 9, 4))

    def test_v1_response_pasid_valid_iff_needs_pasid(self) -> None:
        fq, q = self.make(1)
        fq.cmm[4096:4096 + 128] = b"\xee" * 128
        fq.publish([v1_page_request(A.V1_PRQ_PASID_VALID | A.V1_PRQ_LAST_PAGE | A.V1_PRQ_NEEDS_PASID, 33, 12),
                    v1_page_request(A.V1_PRQ_PASID_VALID | A.V1_PRQ_LAST_PAGE, 44, 13)])
        needs, plain = q.read()
        q.answer(needs)
        q.answer(plain, A.RESP_INVALID)
        q.commit()
        s0, s1 = fq.response_slot(0), fq.response_slot(1)
        self.assertEqual(A.V1_RESPONSE.unpack_from(s0), (24, 1, A.RESP_PASID_VALID, 33, 12, 0))
        self.assertEqual(A.V1_RESPONSE.unpack_from(s1), (24, 1, 0, 0, 13, 1))
        self.assertEqual(s0[24:], bytes(40))
        self.assertEqual(s1[24:], bytes(40))

    def test_commit_rings_unconditionally(self) -> None:
        fq, q = self.make(2)
        fq.producer_doorbell_rings()
        self.assertEqual(fq.p[A.P_PRODUCER_SLEEPING // 4], 0)
        for i in range(3):
            fq.publish([v2_record(i, flags=A.V2_LAST_PAGE, cookie=i)])
            (rec,) = q.read()
            q.answer(rec)
            q.commit()
        self.assertEqual(fq.producer_doorbell_rings(), 3)
        self.assertEqual(q.commit(), 0, "nothing pending: no publish")
        self.assertEqual(fq.producer_doorbell_rings(), 0)

    def test_full_response_ring_never_overwrites(self) -> None:
        fq, q = self.make(2, response_count=4)
        fq.publish([v2_record(i, flags=A.V2_LAST_PAGE, cookie=100 + i) for i in range(6)])
        recs = q.read()
        for rec in recs[:4]:
            q.answer(rec)
        q.commit()
        before = [fq.response_slot(i) for i in range(4)]
        with self.assertRaises(ResponseRingFull) as cm:
            q.answer(recs[4])
        self.assertEqual(cm.exception.errno, errno.ENOBUFS)
        self.assertEqual([fq.response_slot(i) for i in range(4)], before)
        self.assertEqual(q.counters.response_ring_full, 1)
        self.assertFalse(q.wait_for_response_room(timeout=0.05))
        with self.assertRaises(ResponseRingFull):
            q.answer(recs[4], wait=0.05)
        self.assertEqual([fq.response_slot(i) for i in range(4)], before)
        self.assertEqual(fq.consume_responses(), 4)
        self.assertTrue(q.wait_for_response_room(timeout=1))
        q.answer(recs[4])
        q.answer(recs[5])
        q.commit()
        self.assertEqual(A.V2_RESPONSE.unpack_from(fq.response_slot(4))[4], 104)
        self.assertEqual(A.V2_RESPONSE.unpack_from(fq.response_slot(5))[4], 105)

    def test_answer_refuses_non_page_requests(self) -> None:
        fq, q = self.make(2)
        fq.publish([v2_lost(3, 3, 0, 3)])
        (lost,) = q.read()
        with self.assertRaises(OSError) as cm:
            q.answer(lost)
        self.assertEqual(cm.exception.errno, errno.EINVAL)
        with self.assertRaises(OSError):
            q.answer(v2_record, 7)  # type: ignore[arg-type]


class WaitTests(QueueTestCase):
    def test_timeout_then_records(self) -> None:
        fq, q = self.make(2)
        self.assertEqual(q.wait(0.02), WaitResult.TIMEOUT)
        fq.publish([v2_record(0)])
        self.assertEqual(q.wait(0), WaitResult.RECORDS)

    def test_closed_only_once_drained(self) -> None:
        fq, q = self.make(2)
        fq.publish([v2_record(0)])
        fq.p[A.P_STATE // 4] = A.STATE_CLOSED
        self.assertEqual(q.wait(0.1), WaitResult.RECORDS)
        q.read()
        q.release()
        self.assertEqual(q.wait(0.1), WaitResult.CLOSED)

    def test_service_gone_is_distinct(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(ours.close)
        fq, q = self.make(2, control=ours)
        fq.publish([v2_record(0)])
        theirs.close()
        self.assertEqual(q.wait(0.1), WaitResult.RECORDS, "records come before the end")
        q.read()
        self.assertEqual(q.wait(1), WaitResult.SERVICE_GONE)
        # A closed queue wins over a hang-up: that is the clean shutdown.
        fq.p[A.P_STATE // 4] = A.STATE_CLOSED
        self.assertEqual(q.wait(1), WaitResult.CLOSED)


class HeaderValidationTests(unittest.TestCase):
    """Each bad header field is refused, naming the field, and no descriptor leaks."""

    CASES = [
        ({"magic": 0x1234}, "magic"),
        ({"layout_version": 2}, "layout_version"),
        ({"header_size": 512}, "header_size"),
        ({"max_abi": 3}, "max_abi"),
        ({"entry_size": 32}, "entry_size"),
        ({"response_slot_size": 128}, "response_slot_size"),
        ({"entry_count": 12}, "entry_count"),
        ({"response_count": 0}, "response_count"),
        ({"entry_count": 32}, "ring_offset + entry_count*64"),
        ({"response_count": 64}, "response_ring_offset + response_count*64"),
        ({"ring_offset": 100}, "ring_offset"),
        ({"response_ring_offset": 64}, "response_ring_offset"),
        ({"producer_region_size": 1}, "producer_region_size"),
        ({"state": 9}, "state"),
    ]

    def test_bad_fields(self) -> None:
        for overrides, field in self.CASES:
            with self.subTest(field=field):
                before = open_fds()
                fq = FakeQueueFiles(header=overrides)
                try:
                    with self.assertRaises(RegionError) as cm:
                        Queue(*fq.consumer_fds())
                finally:
                    fq.close()
                self.assertEqual(cm.exception.errno, errno.EBADMSG)
                self.assertIn(f"producer header: {field} ", str(cm.exception))
                self.assertEqual(open_fds(), before)

    def test_absurdly_large_region(self) -> None:
        before = open_fds()
        size = (1 << 30) + 4096
        fq = FakeQueueFiles(psize=size, header={"producer_region_size": size})
        try:
            with self.assertRaises(RegionError) as cm:
                Queue(*fq.consumer_fds())
        finally:
            fq.close()
        self.assertIn(f"producer region: size {size} exceeds", str(cm.exception))
        self.assertEqual(open_fds(), before)

    def test_region_smaller_than_header(self) -> None:
        before = open_fds()
        fq = FakeQueueFiles(psize=200, header={"producer_region_size": 200})
        try:
            with self.assertRaises(RegionError) as cm:
                Queue(*fq.consumer_fds())
        finally:
            fq.close()
        self.assertIn("producer region: size 200", str(cm.exception))
        self.assertEqual(open_fds(), before)


if __name__ == "__main__":
    unittest.main()
