"""The control connection to ``faultring serve`` (``Docs/PROTOCOL.md``)."""

from __future__ import annotations

import array
import errno
import json
import os
import select
import socket
import struct
import time
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from . import protocol as P
from .errors import FaultringError, ProtocolError, ServiceError, ServiceGone
from .queue import Queue

__all__ = ["Client", "RETRYABLE_ERRNOS"]

#: Errors :meth:`Client.connect_with_retry` and :meth:`Client.reconnect`
#: retry: the socket not there yet, nobody listening, the connection
#: dropped, a device still held by the previous connection, a timeout.
RETRYABLE_ERRNOS = frozenset({
    errno.ENOENT, errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED,
    errno.EPIPE, errno.ENOTCONN, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT,
    errno.ESHUTDOWN,
})

_FD_SIZE = array.array("i").itemsize
_ANC_SPACE = socket.CMSG_SPACE(P.MSG_FDS_MAX * _FD_SIZE)


def _close_fds(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class Client:
    """One control connection to the faultring service.

    Make one with :meth:`connect` (a socket path) or :meth:`from_fd` (an
    inherited, connected ``SOCK_SEQPACKET`` socket); both say HELLO unless
    told not to, and keep the reply in :attr:`capabilities`. Every request
    waits for its reply at most :attr:`timeout` seconds (``ETIMEDOUT``).
    Replies are validated (size, id, command, flags, payload, descriptors);
    a malformed one raises :class:`~faultring_client.ProtocolError`, an
    error reply :class:`~faultring_client.ServiceError` with the service's
    errno and reason, and a hang-up :class:`~faultring_client.ServiceGone`.
    """

    def __init__(self, sock: socket.socket, *, path: Optional[str] = None, timeout: float = 5.0,
                 client_name: str = "faultring_client") -> None:
        if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_SEQPACKET:
            raise FaultringError(errno.EINVAL,
                                 f"control socket is {sock.family!r} {sock.type!r}, "
                                 f"must be AF_UNIX SOCK_SEQPACKET")
        sock.setblocking(False)
        self._sock = sock
        self.path = path
        self.timeout = timeout
        self.client_name = client_name
        self.capabilities: Optional[Dict] = None
        self.queue: Optional[Queue] = None
        self.abi: Optional[int] = None
        self.devices: List[int] = []
        self._next_id = 1
        self._abandoned: set = set()

    # ------------------------------------------------------------- creation

    @classmethod
    def connect(cls, path: str, *, timeout: float = 5.0, client_name: str = "faultring_client",
                hello: bool = True) -> "Client":
        """Connect to the service's socket at ``path`` and (by default) say HELLO."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
            client = cls(sock, path=path, timeout=timeout, client_name=client_name)
        except BaseException:
            sock.close()
            raise
        return client._greeted(hello)

    @classmethod
    def from_fd(cls, fd: int, *, timeout: float = 5.0, client_name: str = "faultring_client",
                hello: bool = True) -> "Client":
        """Adopt an inherited, connected control socket ``fd`` (the client owns it now)."""
        try:
            sock = socket.socket(fileno=fd)
        except OSError as e:
            raise FaultringError(e.errno or errno.EBADF, f"control fd {fd} is not a socket: {e.strerror}") from None
        try:
            client = cls(sock, timeout=timeout, client_name=client_name)
        except BaseException:
            sock.close()
            raise
        return client._greeted(hello)

    def _greeted(self, hello: bool) -> "Client":
        """Says HELLO if asked; a client whose HELLO fails is closed, not returned."""
        if hello:
            try:
                self.hello()
            except BaseException:
                self.close()
                raise
        return self

    @classmethod
    def connect_with_retry(cls, path: str, abi: Optional[int] = None,
                           device_ids: Sequence[int] = (), *, timeout: float = 10.0,
                           retry_interval: float = 0.05, request_timeout: float = 5.0,
                           client_name: str = "faultring_client",
                           negotiate_timeout: float = 5.0) -> Tuple["Client", Optional[Queue]]:
        """Connect, HELLO and (if ``device_ids``) ATTACH, retrying until ``timeout``.

        Retries on the errnos in :data:`RETRYABLE_ERRNOS` (no socket yet,
        refused, hung up, ``EBUSY``, ...); any other error is raised at once.
        Returns ``(client, queue)`` (queue None without devices). When the
        deadline passes, raises ``ETIMEDOUT`` naming the last error.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            client = None
            try:
                client = cls.connect(path, timeout=max(0.05, min(request_timeout, remaining)),
                                     client_name=client_name)
                queue = None
                if device_ids:
                    queue = client.attach(abi if abi is not None else 2, device_ids,
                                          negotiate_timeout=max(0.05, min(negotiate_timeout, remaining)))
                client.timeout = request_timeout
                return client, queue
            except OSError as e:
                if client is not None:
                    client.close()
                if e.errno not in RETRYABLE_ERRNOS:
                    raise
                if time.monotonic() + retry_interval >= deadline:
                    raise FaultringError(
                        errno.ETIMEDOUT,
                        f"could not connect to {path} and attach {list(device_ids)} within "
                        f"{timeout} s; last error: {e}") from e
                time.sleep(retry_interval)

    def reconnect(self, timeout: float = 10.0, retry_interval: float = 0.05) -> Optional[Queue]:
        """Close this connection and its queue, connect again to :attr:`path`,
        say HELLO and re-attach the same devices with the same ABI, retrying
        until ``timeout`` (see :meth:`connect_with_retry`).

        The client keeps its identity (this object); returns the new queue
        (None if no device was attached).
        """
        if self.path is None:
            raise FaultringError(errno.EINVAL,
                                 "reconnect needs a socket path; this client came from an inherited fd")
        devices, abi = list(self.devices), self.abi
        self.close()
        new, queue = Client.connect_with_retry(
            self.path, abi, devices, timeout=timeout, retry_interval=retry_interval,
            request_timeout=self.timeout, client_name=self.client_name)
        self.__dict__.update(new.__dict__)
        new.__dict__.clear()
        return queue

    # ------------------------------------------------------------- requests

    def hello(self, client_name: Optional[str] = None) -> Dict:
        """HELLO: send ``{"protocolVersion": 1, "client": name}``; return the capabilities."""
        name = client_name or self.client_name
        payload = json.dumps({"protocolVersion": P.PROTOCOL_VERSION, "client": name}).encode()
        _, body, _ = self._request(P.CMD_HELLO, payload)
        caps = self._json(body, "HELLO")
        version = caps.get("protocolVersion")
        if version != P.PROTOCOL_VERSION:
            raise ProtocolError(f"HELLO reply: protocolVersion {version!r} is not {P.PROTOCOL_VERSION}")
        self.capabilities = caps
        return caps

    def attach(self, abi: int, device_ids: Sequence[int], *, negotiate: bool = True,
               negotiate_timeout: float = 5.0, poll_interval: float = 0.01) -> Queue:
        """ATTACH ``device_ids`` for record ABI ``abi`` (1 or 2); return the queue.

        The first ATTACH of a connection creates its queue: the reply must
        carry exactly four descriptors, which are validated and mapped (see
        :class:`Queue`), and the ABI is negotiated unless ``negotiate`` is
        False. A later ATTACH adds devices to the same queue and returns it.
        An ABI 1 queue serves exactly one device (the service refuses more,
        ``EINVAL``). Every received descriptor is closed on every error path.
        If only the negotiation fails, the queue stays in :attr:`queue`
        (un-negotiated; :meth:`Queue.negotiate` may be retried) and the
        error is raised.
        """
        ids = [int(d) for d in device_ids]
        if not 1 <= len(ids) <= P.MAX_DEVICES_PER_MESSAGE:
            raise FaultringError(errno.EINVAL, f"ATTACH: device_count {len(ids)} is outside 1..64")
        for d in ids:
            if not 0 <= d <= 0xFFFFFFFF:
                raise FaultringError(errno.EINVAL, f"ATTACH: device id {d} is not a u32")
        if not 0 <= abi <= 0xFFFFFFFF:
            raise FaultringError(errno.EINVAL, f"ATTACH: abi {abi} is not a u32")
        header, body, fds = self._request(P.CMD_ATTACH, P.pack_attach(abi, ids), accept_fds=True)
        try:
            if len(body) != P.ATTACH_REPLY.size:
                raise ProtocolError(f"ATTACH reply: payload of {len(body)} bytes, expected {P.ATTACH_REPLY.size}")
            reply = P.AttachReply._make(P.ATTACH_REPLY.unpack(body))
            if reply.queue_created == 1:
                if self.queue is not None:
                    raise ProtocolError("ATTACH reply: queue_created 1, but this connection already has a queue")
                if len(fds) != 4:
                    raise ProtocolError(f"ATTACH reply: {len(fds)} descriptors, expected exactly 4 "
                                        f"with queue_created 1")
            elif reply.queue_created == 0:
                if self.queue is None:
                    raise ProtocolError("ATTACH reply: queue_created 0, but this connection has no queue yet")
                if fds:
                    raise ProtocolError(f"ATTACH reply: {len(fds)} descriptors with queue_created 0, expected none")
            else:
                raise ProtocolError(f"ATTACH reply: queue_created {reply.queue_created} is not 0 or 1")
            if reply.attached < len(ids):
                raise ProtocolError(f"ATTACH reply: attached {reply.attached} is fewer than the "
                                    f"{len(ids)} devices just attached")
        except BaseException:
            _close_fds(fds)
            raise
        if reply.queue_created == 1:
            # Queue() owns the fds from here on and closes them if it raises.
            queue = Queue(*fds, control=self._sock, entry_count=reply.entry_count,
                          response_count=reply.response_count, poll_interval=poll_interval)
            self.queue = queue
            self.abi = abi
            if negotiate:
                queue.negotiate(abi, timeout=negotiate_timeout)
        else:
            if self.abi != abi:
                raise ProtocolError(f"ATTACH: the service accepted abi {abi} on a queue of abi {self.abi}")
        for d in ids:
            if d not in self.devices:
                self.devices.append(d)
        self.queue.devices = list(self.devices)
        return self.queue

    def detach(self, device_ids: Sequence[int] = ()) -> None:
        """DETACH ``device_ids`` (empty: all of this connection's devices).

        Their outstanding page requests are answered INVALID by the service.
        """
        ids = [int(d) for d in device_ids]
        if len(ids) > P.MAX_DEVICES_PER_MESSAGE:
            raise FaultringError(errno.EINVAL, f"DETACH: device_count {len(ids)} is above 64")
        _, body, _ = self._request(P.CMD_DETACH, P.pack_detach(ids))
        if body:
            raise ProtocolError(f"DETACH reply: payload of {len(body)} bytes, expected none")
        self.devices = [d for d in self.devices if ids and d not in ids]
        if self.queue is not None:
            self.queue.devices = list(self.devices)

    # ------------------------------------------------------ nested IOMMU

    def add_guest_memory(self, fd: int, gpa: int, size: int, offset: int = 0) -> None:
        """ADD_GUEST_MEMORY: guest-physical ``gpa .. gpa + size`` is ``fd`` from ``offset``.

        ``fd`` (a tmpfs memfd sealed ``F_SEAL_SHRINK``) is sent by SCM_RIGHTS;
        the caller keeps its own. Refusals raise :class:`FaultringError` with
        the service's errno (EBADF unsealed, EINVAL alignment, EEXIST overlap).
        """
        self._empty_reply(P.CMD_ADD_GUEST_MEMORY, P.pack_guest_memory(gpa, size, offset), fds=[fd])

    def bind_vtd_pasid(self, pasid: int, entry: Sequence[int], device_ids: Sequence[int]) -> None:
        """BIND ``pasid``'s first stage (the guest's eight PASID-entry words) on every device, or none."""
        if len(entry) != 8:
            raise FaultringError(errno.EINVAL, f"BIND: a PASID entry is 8 words, not {len(entry)}")
        self._empty_reply(P.CMD_BIND, P.pack_bind(P.BIND_VTD_PASID, pasid, entry, self._ids("BIND", device_ids)))

    def bind_smmuv3_ste(self, ste: Sequence[int], device_ids: Sequence[int]) -> None:
        """BIND the guest's CD table (STE words 0 and 1) on every device, or none."""
        if len(ste) != 2:
            raise FaultringError(errno.EINVAL, f"BIND: an STE is 2 words here, not {len(ste)}")
        self._empty_reply(P.CMD_BIND, P.pack_bind(P.BIND_SMMUV3_STE, 0, ste, self._ids("BIND", device_ids)))

    def unbind(self, fmt: int, pasid: int, device_ids: Sequence[int]) -> None:
        """UNBIND (``fmt`` ``BIND_VTD_PASID`` with its PASID, or ``BIND_SMMUV3_STE`` with 0); cannot fail once well formed."""
        self._empty_reply(P.CMD_UNBIND, P.pack_unbind(fmt, pasid, self._ids("UNBIND", device_ids)))

    def invalidate(self, granularity: int, *, pasid: Optional[int] = None, device: int = 0,
                   address: Optional[int] = None, size: Optional[int] = None, leaf: bool = False) -> None:
        """INVALIDATE: ``INV_*`` with the PASID and range flags set from what is given."""
        flags = (P.INV_FLAG_PASID if pasid is not None else 0) | (P.INV_FLAG_LEAF if leaf else 0)
        if (address is None) != (size is None):
            raise FaultringError(errno.EINVAL, "INVALIDATE: a range needs both address and size")
        if address is not None:
            flags |= P.INV_FLAG_RANGE
        payload = P.pack_invalidate(granularity, flags, device, pasid or 0, address or 0, size or 0)
        self._empty_reply(P.CMD_INVALIDATE, payload)

    def bind_msi(self, iova: int, gpa: int, size: int) -> None:
        """BIND_MSI: the guest's doorbell at ``iova`` is the page at ``gpa``; writes there bypass stage 1."""
        self._empty_reply(P.CMD_BIND_MSI, P.pack_bind_msi(0, iova, gpa, size))

    def unbind_msi(self, iova: int) -> None:
        """BIND_MSI with ``MSI_FLAG_UNBIND``; cannot fail once well formed."""
        self._empty_reply(P.CMD_BIND_MSI, P.pack_bind_msi(P.MSI_FLAG_UNBIND, iova, 0, 0))

    @staticmethod
    def _ids(what: str, device_ids: Sequence[int]) -> List[int]:
        ids = [int(d) for d in device_ids]
        if not 1 <= len(ids) <= P.MAX_DEVICES_PER_MESSAGE:
            raise FaultringError(errno.EINVAL, f"{what}: {len(ids)} devices; 1 .. 64 per message")
        return ids

    def _empty_reply(self, command: int, payload: bytes, fds: Sequence[int] = ()) -> None:
        _, body, _ = self._request(command, payload, send_fds=fds)
        if body:
            raise ProtocolError(f"{P.command_name(command)} reply: payload of {len(body)} bytes, expected none")

    def stats(self) -> Dict:
        """STATS: the service's statistics as a dict (``Docs/stats.v1.schema.json``)."""
        _, body, _ = self._request(P.CMD_STATS)
        doc = self._json(body, "STATS")
        if doc.get("statsVersion") != 1:
            raise ProtocolError(f"STATS reply: statsVersion {doc.get('statsVersion')!r} is not 1")
        return doc

    def stats_prometheus(self) -> str:
        """STATS with the TEXT flag: the Prometheus text exposition."""
        _, body, _ = self._request(P.CMD_STATS, flags=P.MSG_TEXT)
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"STATS text reply: not UTF-8 at byte {e.start}") from None

    def bye(self) -> None:
        """BYE: the service replies, closes the connection and the queue (``state`` 3).

        The queue stays mapped, so the remaining records can still be read
        until :meth:`Queue.wait` reports ``CLOSED``.
        """
        _, body, _ = self._request(P.CMD_BYE)
        if body:
            raise ProtocolError(f"BYE reply: payload of {len(body)} bytes, expected none")
        self._sock.close()

    def close(self) -> None:
        """Close the queue (if any) and the control socket (idempotent)."""
        if self.queue is not None:
            self.queue.close()
        if getattr(self, "_sock", None) is not None:
            self._sock.close()

    def fileno(self) -> int:
        """The control socket's descriptor (-1 once closed)."""
        return self._sock.fileno()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------- framing

    @staticmethod
    def _json(body: bytes, what: str) -> Dict:
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ProtocolError(f"{what} reply: payload is not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise ProtocolError(f"{what} reply: payload is a JSON {type(doc).__name__}, not an object")
        return doc

    def _take_id(self) -> int:
        msg_id = self._next_id
        self._next_id = msg_id % 0xFFFF + 1  # 1 .. 65535; 0 is the service's "no id"
        return msg_id

    def _request(self, command: int, payload: bytes = b"", flags: int = 0,
                 accept_fds: bool = False, send_fds: Sequence[int] = ()) -> Tuple[P.Header, bytes, List[int]]:
        if self._sock.fileno() < 0:
            raise FaultringError(errno.EBADF, f"{P.command_name(command)}: the control connection is closed")
        msg_id = self._take_id()
        message = P.pack_message(msg_id, command, payload, flags)
        if len(message) > P.MSG_MAX:
            raise FaultringError(errno.EMSGSIZE, f"{P.command_name(command)}: message of "
                                 f"{len(message)} bytes exceeds {P.MSG_MAX}")
        deadline = time.monotonic() + self.timeout
        self._send(message, command, msg_id, deadline, send_fds)
        while True:
            header, body, fds = self._receive(command, msg_id, deadline)
            if header.id in self._abandoned and header.id != msg_id:
                # A late reply to a request that timed out: drop it.
                self._abandoned.discard(header.id)
                _close_fds(fds)
                continue
            try:
                self._check_reply(header, body, fds, command, msg_id, accept_fds)
            except BaseException:
                _close_fds(fds)
                raise
            return header, body, fds

    def _poll(self, events: int, deadline: float, what: str, msg_id: int) -> None:
        poller = select.poll()
        poller.register(self._sock.fileno(), events)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._abandoned.add(msg_id)
                raise FaultringError(errno.ETIMEDOUT,
                                     f"{what} (id {msg_id}): no reply within {self.timeout} s")
            ready = poller.poll(int(remaining * 1000) + 1)
            if ready:
                return

    def _send(self, message: bytes, command: int, msg_id: int, deadline: float,
              fds: Sequence[int] = ()) -> None:
        name = P.command_name(command)
        while True:
            try:
                sent = socket.send_fds(self._sock, [message], list(fds)) if fds else self._sock.send(message)
            except (BlockingIOError, InterruptedError):
                self._poll(select.POLLOUT, deadline, name, msg_id)
                continue
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
                raise ServiceGone(f"{name}: the service hung up ({e.strerror})", e.errno) from None
            if sent != len(message):
                raise ProtocolError(f"{name}: sent {sent} of {len(message)} bytes", errno.EMSGSIZE)
            return

    def _receive(self, command: int, msg_id: int, deadline: float) -> Tuple[P.Header, bytes, List[int]]:
        name = P.command_name(command)
        while True:
            try:
                data, ancdata, msg_flags, _ = self._sock.recvmsg(
                    P.MSG_MAX + 1, _ANC_SPACE, socket.MSG_CMSG_CLOEXEC)
                break
            except (BlockingIOError, InterruptedError):
                self._poll(select.POLLIN, deadline, name, msg_id)
            except (ConnectionResetError, ConnectionAbortedError) as e:
                raise ServiceGone(f"{name}: the service hung up ({e.strerror})", e.errno) from None
        fds: List[int] = []
        bad_cmsg = None
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                whole = len(cdata) - len(cdata) % _FD_SIZE
                fds.extend(array.array("i", cdata[:whole]))
            else:
                bad_cmsg = (level, kind)
        try:
            if not data and not ancdata:
                raise ServiceGone(f"{name}: the service closed the connection before replying",
                                  errno.ECONNRESET)
            if msg_flags & socket.MSG_CTRUNC:
                raise ProtocolError(f"{name} reply: control data truncated (MSG_CTRUNC): more than "
                                    f"{P.MSG_FDS_MAX} descriptors were sent")
            if msg_flags & socket.MSG_TRUNC:
                raise ProtocolError(f"{name} reply: longer than {P.MSG_MAX} bytes (MSG_TRUNC)")
            if bad_cmsg is not None:
                raise ProtocolError(f"{name} reply: unexpected control message level {bad_cmsg[0]} "
                                    f"type {bad_cmsg[1]}")
            if len(data) < P.HEADER_SIZE:
                raise ProtocolError(f"{name} reply: {len(data)} bytes, shorter than the "
                                    f"{P.HEADER_SIZE}-byte header")
            header = P.Header._make(P.HEADER.unpack_from(data))
            if header.size != len(data):
                raise ProtocolError(f"{name} reply: header size {header.size} but the message is "
                                    f"{len(data)} bytes")
        except BaseException:
            _close_fds(fds)
            raise
        return header, data[P.HEADER_SIZE:], fds

    def _check_reply(self, header: P.Header, body: bytes, fds: List[int], command: int,
                     msg_id: int, accept_fds: bool) -> None:
        name = P.command_name(command)
        if header.flags & ~P.MSG_FLAGS_KNOWN:
            raise ProtocolError(f"{name} reply: unknown flag bits 0x{header.flags & ~P.MSG_FLAGS_KNOWN:x}")
        if not header.flags & P.MSG_REPLY:
            raise ProtocolError(f"{name} reply: flags 0x{header.flags:x} lack REPLY")
        if header.flags & P.MSG_ERROR:
            if header.error == 0:
                raise ProtocolError(f"{name} reply: ERROR flag with errno 0")
            reason = body.decode("utf-8", "replace")
            if header.id == 0 or (header.id == msg_id and header.command in (command, 0)):
                # id 0: an unsolicited error (EACCES on accept, or a short message).
                raise ServiceError(header.error, reason, name, header.id)
        if header.id != msg_id:
            raise ProtocolError(f"{name} reply: id {header.id}, expected {msg_id}")
        if header.command != command:
            raise ProtocolError(f"{name} reply: command {header.command} "
                                f"({P.command_name(header.command)}), expected {command}")
        if header.error != 0:
            raise ProtocolError(f"{name} reply: errno {header.error} without the ERROR flag")
        if header.flags & P.MSG_TEXT and command != P.CMD_STATS:
            raise ProtocolError(f"{name} reply: TEXT flag on a {name} reply")
        if fds and not accept_fds:
            raise ProtocolError(f"{name} reply: carries {len(fds)} descriptors, expected none")
