"""A fake server answers HELLO properly, then ATTACH with something hostile.

Each case must raise the right error, and every received descriptor must
be closed: /proc/self/fd is the same before and after.
"""

from __future__ import annotations

import errno
import os
import socket
import unittest

from faultring_client import (
    Client,
    DescriptorError,
    ProtocolError,
    RegionError,
    ServiceError,
    ServiceGone,
)
from faultring_client import protocol as P

from .support import (
    F_SEAL_GROW,
    F_SEAL_SEAL,
    F_SEAL_SHRINK,
    FakeQueueFiles,
    FakeServer,
    attach_reply_payload,
    open_fds,
    reply,
    send_with_fds,
)


class HostileServerTests(unittest.TestCase):
    def run_case(self, handler, expected_exc, errno_value, *needles, request=None):
        """Connect to a fake server serving ``handler``; ATTACH (or ``request``); check the error."""
        before = open_fds()
        server = FakeServer(handler)
        client = Client(server.client_sock, timeout=2.0)
        try:
            caps = client.hello()
            self.assertEqual(caps["protocolVersion"], 1)
            with self.assertRaises(expected_exc) as cm:
                if request is None:
                    client.attach(2, [1], negotiate_timeout=0.5)
                else:
                    request(client)
            self.assertEqual(cm.exception.errno, errno_value, str(cm.exception))
            for needle in needles:
                self.assertIn(needle, str(cm.exception))
            self.assertIsNone(client.queue)
        finally:
            client.close()
            server.join()
        self.assertEqual(open_fds(), before, "descriptors leaked")
        return cm.exception

    @staticmethod
    def attach_with(make_files, fds_of=None, payload=None, **reply_kw):
        """A handler answering ATTACH with queue files from ``make_files()``."""
        def handler(sock, header, _payload):
            fq = make_files()
            try:
                fds = fds_of(fq) if fds_of else fq.consumer_fds()
                try:
                    body = payload if payload is not None else attach_reply_payload(fq.entry_count,
                                                                                    fq.response_count)
                    send_with_fds(sock, reply(header, body, **reply_kw), fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            finally:
                fq.close()
        return handler

    # -- the brief's cases

    def test_three_descriptors(self) -> None:
        def fds_of(fq):
            fds = fq.consumer_fds()
            os.close(fds.pop())
            return fds
        self.run_case(self.attach_with(FakeQueueFiles, fds_of=fds_of),
                      ProtocolError, errno.EPROTO, "3 descriptors, expected exactly 4")

    def test_unsealed_memfd(self) -> None:
        self.run_case(self.attach_with(lambda: FakeQueueFiles(seals=0)),
                      DescriptorError, errno.EBADF, "producer region", "seals 0x0 lack 0x17")

    def test_consumer_region_without_grow_seal(self) -> None:
        self.run_case(self.attach_with(lambda: FakeQueueFiles(consumer_seals=F_SEAL_SHRINK | F_SEAL_SEAL)),
                      DescriptorError, errno.EBADF, "consumer region", "lack 0x4")

    def test_producer_without_future_write_seal(self) -> None:
        self.run_case(self.attach_with(lambda: FakeQueueFiles(seals=F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)),
                      DescriptorError, errno.EBADF, "lack 0x10", "FUTURE_WRITE")

    def test_producer_region_opened_rdwr(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, fds_of=lambda fq: fq.consumer_fds(os.O_RDWR)),
                      DescriptorError, errno.EBADF, "producer region", "opened O_RDWR, must be O_RDONLY")

    def test_truncated_reply_payload(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, payload=attach_reply_payload()[:10]),
                      ProtocolError, errno.EPROTO, "payload of 10 bytes, expected 16")

    def test_truncated_reply_header_size_disagrees(self) -> None:
        # The header claims 32 bytes; the packet is 26.
        self.run_case(self.attach_with(FakeQueueFiles, payload=attach_reply_payload()[:10], size=32),
                      ProtocolError, errno.EPROTO, "header size 32 but the message is 26 bytes")

    def test_reply_shorter_than_header(self) -> None:
        def handler(sock, header, _payload):
            fq = FakeQueueFiles()
            fds = fq.consumer_fds()
            send_with_fds(sock, reply(header)[:9], fds)
            for fd in fds:
                os.close(fd)
            fq.close()
        self.run_case(handler, ProtocolError, errno.EPROTO, "9 bytes, shorter than the 16-byte header")

    def test_bad_magic(self) -> None:
        self.run_case(self.attach_with(lambda: FakeQueueFiles(header={"magic": 0x4141414141414141})),
                      RegionError, errno.EBADMSG, "magic 0x4141414141414141")

    def test_ring_bigger_than_region(self) -> None:
        # The header says 64 entries; the region holds 16.
        self.run_case(self.attach_with(lambda: FakeQueueFiles(header={"entry_count": 64})),
                      RegionError, errno.EBADMSG, "ring_offset + entry_count*64 8192",
                      "beyond the producer region's 5120 bytes")

    # -- more of the same

    def test_five_descriptors_truncate(self) -> None:
        def fds_of(fq):
            return fq.consumer_fds() + [os.dup(fq.cfd)]
        self.run_case(self.attach_with(FakeQueueFiles, fds_of=fds_of),
                      ProtocolError, errno.EPROTO, "MSG_CTRUNC")

    def test_doorbell_not_a_datagram_socket(self) -> None:
        holder = {}

        def fds_of(fq):
            a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            holder["pair"] = (a, b)
            fds = fq.consumer_fds()
            os.close(fds[2])
            fds[2] = os.dup(a.fileno())
            return fds

        def make():
            return FakeQueueFiles()
        handler = self.attach_with(make, fds_of=fds_of)

        def wrapped(sock, header, payload):
            try:
                handler(sock, header, payload)
            finally:
                for s in holder.get("pair", ()):
                    s.close()
        self.run_case(wrapped, DescriptorError, errno.EBADF, "consumer doorbell", "must be AF_UNIX SOCK_DGRAM")

    def test_doorbell_not_a_socket(self) -> None:
        def fds_of(fq):
            fds = fq.consumer_fds()
            os.close(fds[3])
            fds[3] = os.dup(fq.cfd)
            return fds
        self.run_case(self.attach_with(FakeQueueFiles, fds_of=fds_of),
                      DescriptorError, errno.EBADF, "producer doorbell", "is not a socket")

    def test_region_not_a_memfd(self) -> None:
        def fds_of(fq):
            fds = fq.consumer_fds()
            os.close(fds[1])
            fds[1] = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            return fds
        self.run_case(self.attach_with(FakeQueueFiles, fds_of=fds_of),
                      DescriptorError, errno.EBADF, "consumer region")

    def test_wrong_reply_id(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, msg_id=4242),
                      ProtocolError, errno.EPROTO, "id 4242, expected")

    def test_wrong_reply_command(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, command=P.CMD_STATS),
                      ProtocolError, errno.EPROTO, "command 4 (STATS), expected 2")

    def test_reply_without_reply_flag(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, flags=0), ProtocolError, errno.EPROTO, "lack REPLY")

    def test_reply_with_unknown_flags(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, flags=P.MSG_REPLY | 0x80),
                      ProtocolError, errno.EPROTO, "unknown flag bits 0x80")

    def test_counts_disagree_with_header(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, payload=attach_reply_payload(entry_count=32)),
                      RegionError, errno.EBADMSG, "entry_count 16 disagrees with the ATTACH reply's 32")

    def test_no_descriptors_on_first_attach(self) -> None:
        self.run_case(self.attach_with(FakeQueueFiles, fds_of=lambda fq: []),
                      ProtocolError, errno.EPROTO, "0 descriptors, expected exactly 4")

    def test_error_reply_surfaces_errno_and_reason(self) -> None:
        def handler(sock, header, _payload):
            fq = FakeQueueFiles()
            fds = fq.consumer_fds()  # descriptors on an error reply: closed too
            reason = b"device 1 belongs to another connection"
            send_with_fds(sock, reply(header, reason, flags=P.MSG_REPLY | P.MSG_ERROR, error=errno.EBUSY), fds)
            for fd in fds:
                os.close(fd)
            fq.close()
        e = self.run_case(handler, ServiceError, errno.EBUSY, "ATTACH refused",
                          "device 1 belongs to another connection")
        self.assertEqual(e.reason, "device 1 belongs to another connection")

    def test_descriptors_on_a_stats_reply(self) -> None:
        def handler(sock, header, _payload):
            fq = FakeQueueFiles()
            fds = fq.consumer_fds()
            send_with_fds(sock, reply(header, b'{"statsVersion": 1}'), fds)
            for fd in fds:
                os.close(fd)
            fq.close()
        self.run_case(handler, ProtocolError, errno.EPROTO, "STATS reply: carries 4 descriptors",
                      request=lambda c: c.stats())

    def test_no_reply_times_out(self) -> None:
        e = self.run_case(lambda sock, header, payload: None, OSError, errno.ETIMEDOUT,
                          "STATS (id 2): no reply within", request=lambda c: c.stats())
        self.assertNotIsInstance(e, ServiceError)

    def test_hang_up_instead_of_reply(self) -> None:
        def handler(sock, header, _payload):
            sock.shutdown(socket.SHUT_RDWR)
        self.run_case(handler, ServiceGone, errno.ECONNRESET, "closed the connection",
                      request=lambda c: c.stats())


if __name__ == "__main__":
    unittest.main()
