"""Test helpers: the real service as a subprocess, a fake producer (regions
and doorbells made here), a fake control server, descriptor counting."""

from __future__ import annotations

import json
import mmap
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from typing import Callable, List, Optional, Sequence

from faultring_client import abi as A
from faultring_client import protocol as P

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
PACKAGE_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
FIXTURES = os.path.join(REPO, "Fixtures")
FAULTRING_BIN = os.environ.get("FAULTRING_BIN") or os.path.join(REPO, ".build", "debug", "faultring")
HAVE_BIN = os.path.isfile(FAULTRING_BIN) and os.access(FAULTRING_BIN, os.X_OK)
NO_BIN_REASON = f"faultring binary not found at {FAULTRING_BIN} (set FAULTRING_BIN)"

MFD_CLOEXEC = getattr(os, "MFD_CLOEXEC", 1)
MFD_ALLOW_SEALING = getattr(os, "MFD_ALLOW_SEALING", 2)
F_ADD_SEALS = 1033
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE = 1, 2, 4, 8, 0x10


def open_fds() -> List[int]:
    """This process's open descriptors (the listing's own fd excluded)."""
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue  # the directory fd listdir used, already closed
        fds.append(fd)
    return sorted(fds)


def deadline_loop(seconds: float):
    """Yield until ``seconds`` have passed (a bound, never an assertion on speed)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield end - time.monotonic()


# ------------------------------------------------------------ the service


class ServiceProcess:
    """``faultring serve`` on ``socket_path``; always reaped by :meth:`stop`."""

    def __init__(self, socket_path: str, devices: int = 4, rate: float = 2000,
                 extra: Sequence[str] = ()) -> None:
        self.socket_path = socket_path
        self.args = [FAULTRING_BIN, "serve", "--socket-path", socket_path, "--devices", str(devices),
                     "--rate", str(rate), "--log-level", "error", *extra]
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = socket_path + ".log"

    def start(self, timeout: float = 30.0) -> "ServiceProcess":
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"faultring serve exited with {self.proc.returncode}: {self.log()}")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                probe.connect(self.socket_path)
                return self
            except OSError:
                if time.monotonic() > end:
                    self.stop()
                    raise RuntimeError(f"faultring serve did not listen on {self.socket_path} "
                                       f"within {timeout} s: {self.log()}")
                time.sleep(0.02)
            finally:
                probe.close()

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.running:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        """SIGTERM, wait; SIGKILL if it does not end; reap. Idempotent."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return self.proc.returncode


class TempDir:
    """A short temporary directory (AF_UNIX paths are limited to 108 bytes)."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="frpy-", dir="/tmp")

    def join(self, name: str) -> str:
        return os.path.join(self.path, name)

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# ------------------------------------------------------------ fake producer


class FakeQueueFiles:
    """A queue made in this process, playing the producer's side.

    Builds both memfds (the producer region mapped writable here *before* the
    FUTURE_WRITE seal, as the real producer does) and both doorbell socket
    pairs. :meth:`consumer_fds` makes the four descriptors a consumer gets.
    ``header`` overrides header fields; ``psize``/``csize`` override sizes.
    """

    def __init__(self, entry_count: int = 16, response_count: int = 8, *, seals: Optional[int] = None,
                 consumer_seals: Optional[int] = None, header: Optional[dict] = None,
                 psize: Optional[int] = None, csize: Optional[int] = None) -> None:
        self.entry_count, self.response_count = entry_count, response_count
        self.psize = psize if psize is not None else 4096 + entry_count * 64
        self.csize = csize if csize is not None else 4096 + response_count * 64
        self.pfd = os.memfd_create("frtest-producer", MFD_CLOEXEC | MFD_ALLOW_SEALING)
        self.cfd = os.memfd_create("frtest-consumer", MFD_CLOEXEC | MFD_ALLOW_SEALING)
        os.ftruncate(self.pfd, self.psize)
        os.ftruncate(self.cfd, self.csize)
        self.pmm = mmap.mmap(self.pfd, self.psize)
        self.cmm = mmap.mmap(self.cfd, self.csize)
        fields = dict(magic=A.PRODUCER_MAGIC, layout_version=1, header_size=576, max_abi=2, abi=0,
                      entry_size=64, entry_count=entry_count, ring_offset=4096, response_slot_size=64,
                      response_count=response_count, response_ring_offset=4096, state=1,
                      producer_pid=os.getpid(), features_offered=0, features_in_force=0,
                      producer_region_size=self.psize, consumer_region_size=self.csize)
        fields.update(header or {})
        A.PRODUCER_HEADER.pack_into(self.pmm, 0, *A.ProducerHeader(**fields))
        import fcntl
        if seals is None:
            seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL
        if consumer_seals is None:
            consumer_seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL
        if seals:
            fcntl.fcntl(self.pfd, F_ADD_SEALS, seals)
        if consumer_seals:
            fcntl.fcntl(self.cfd, F_ADD_SEALS, consumer_seals)
        self.cons_db_consumer, self.cons_db_producer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.prod_db_consumer, self.prod_db_producer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self.cons_db_consumer, self.cons_db_producer, self.prod_db_consumer, self.prod_db_producer):
            s.setblocking(False)
        self.p = memoryview(self.pmm).cast("I")
        self.c = memoryview(self.cmm).cast("I")
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def consumer_fds(self, producer_flags: int = os.O_RDONLY) -> List[int]:
        """Fresh descriptors for a consumer: producer region reopened with
        ``producer_flags``, then consumer region, consumer doorbell, producer doorbell."""
        return [os.open(f"/proc/self/fd/{self.pfd}", producer_flags | os.O_CLOEXEC),
                os.dup(self.cfd), os.dup(self.cons_db_consumer.fileno()), os.dup(self.prod_db_consumer.fileno())]

    # -- producer actions

    def start_negotiation_thread(self) -> None:
        """Accept the consumer's requested_abi in a thread (as the producer does)."""
        def run() -> None:
            while not self._stop.is_set():
                req = self.c[0]
                if req:
                    self.p[A.P_ABI // 4] = req
                    self.p[A.P_STATE // 4] = A.STATE_RUNNING
                    try:
                        self.cons_db_producer.send((1).to_bytes(8, "little"))
                    except OSError:
                        pass
                    return
                time.sleep(0.001)
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def write_record(self, index: int, raw: bytes) -> None:
        off = 4096 + (index & (self.entry_count - 1)) * 64
        self.pmm[off:off + 64] = raw

    def publish(self, raws: Sequence[bytes]) -> None:
        prod = self.p[A.P_FAULT_PROD // 4]
        for i, raw in enumerate(raws):
            self.write_record(prod + i, raw)
        self.p[A.P_FAULT_PROD // 4] = (prod + len(raws)) & 0xFFFFFFFF

    def response_slot(self, index: int) -> bytes:
        off = 4096 + (index & (self.response_count - 1)) * 64
        return bytes(self.cmm[off:off + 64])

    def consume_responses(self) -> int:
        """Copy nothing, just advance resp_cons to resp_prod; return how many."""
        cons, prod = self.p[A.P_RESP_CONS // 4], self.c[A.C_RESP_PROD // 4]
        self.p[A.P_RESP_CONS // 4] = prod
        return (prod - cons) & 0xFFFFFFFF

    def producer_doorbell_rings(self) -> int:
        n = 0
        while True:
            try:
                data = self.prod_db_producer.recv(64)
            except BlockingIOError:
                return n
            assert data == (1).to_bytes(8, "little"), data
            n += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.p.release()
        self.c.release()
        self.pmm.close()
        self.cmm.close()
        os.close(self.pfd)
        os.close(self.cfd)
        for s in (self.cons_db_consumer, self.cons_db_producer, self.prod_db_consumer, self.prod_db_producer):
            s.close()


def v2_record(seq: int, *, type: int = A.FAULT_PAGE_REQ, device: int = 1, flags: int = 0, pasid: int = 0,
              grpid: int = 0, perm: int = 1, reason: int = 0, addr: int = 0x1000, fetch: int = 0,
              cookie: int = 0, ts: int = 0) -> bytes:
    return A.V2_FAULT.pack(type, seq, device, flags, pasid, grpid, perm, reason, addr, fetch, cookie, ts)


def v2_lost(seq: int, lost: int, first: int, total: int, ts: int = 0) -> bytes:
    return A.V2_LOST.pack(A.FAULT_LOST, seq, 0, 0, lost, first, 0, total, ts)


def v1_page_request(flags: int, pasid: int, grpid: int, perm: int = 1, addr: int = 0x2000,
                    private=(0, 0)) -> bytes:
    return A.V1_PAGE_REQUEST.pack(A.FAULT_PAGE_REQ, 0, flags, pasid, grpid, perm, addr, *private)


# ------------------------------------------------------------ fake control server


CAPABILITIES = {"protocolVersion": 1, "abis": [1, 2], "features": [], "maxMessageSize": 65536,
                "maxDevicesPerAttach": 64, "entryCount": 16, "responseCount": 8, "devices": [1],
                "eventLoop": "poll", "pageRequestTimeoutMilliseconds": 10000}


def reply(request_header: P.Header, payload: bytes = b"", *, flags: int = P.MSG_REPLY, error: int = 0,
          msg_id: Optional[int] = None, command: Optional[int] = None, size: Optional[int] = None) -> bytes:
    """A reply to ``request_header``, every header field overridable."""
    return P.HEADER.pack(request_header.id if msg_id is None else msg_id,
                         request_header.command if command is None else command,
                         P.HEADER_SIZE + len(payload) if size is None else size,
                         flags, error) + payload


def send_with_fds(sock: socket.socket, data: bytes, fds: Sequence[int]) -> None:
    import array
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


class FakeServer:
    """Answers HELLO properly, then hands each later request to ``handler(sock, header, payload)``.

    Runs in a thread on one end of a ``SOCK_SEQPACKET`` socket pair; the
    client gets the other end (:attr:`client_sock`).
    """

    def __init__(self, handler: Callable[[socket.socket, P.Header, bytes], None]) -> None:
        self.client_sock, self._sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._handler = handler
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._sock.settimeout(10)
            while True:
                try:
                    msg = self._sock.recv(P.MSG_MAX)
                except (socket.timeout, OSError):
                    return
                if not msg:
                    return
                header = P.Header._make(P.HEADER.unpack_from(msg))
                if header.command == P.CMD_HELLO:
                    self._sock.send(reply(header, json.dumps(CAPABILITIES).encode()))
                else:
                    self._handler(self._sock, header, msg[P.HEADER_SIZE:])
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def join(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._sock.close()
        if self.error is not None:
            raise self.error


def attach_reply_payload(entry_count: int = 16, response_count: int = 8, queue_created: int = 1,
                         attached: int = 1) -> bytes:
    return P.ATTACH_REPLY.pack(queue_created, entry_count, response_count, attached)
