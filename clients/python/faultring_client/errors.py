"""Exceptions raised by :mod:`faultring_client`.

Every error is an :class:`OSError` subclass carrying an ``errno`` and a
message that names the field and the value at fault, so callers can branch
on ``e.errno`` and people can read ``str(e)``.

Which errno means what:

* ``EPROTO``: the service's control message was malformed (size, id,
  command, flags, payload length, descriptor count, ``MSG_CTRUNC``).
* ``EBADF``: a received descriptor is of the wrong kind (not a sealed memfd,
  wrong access mode, not an ``AF_UNIX`` ``SOCK_DGRAM`` socket).
* ``EBADMSG``: a shared region's header is not a faultring queue of this
  layout (magic, version, sizes, geometry).
* ``ETIMEDOUT``: no reply, or no negotiation, within the timeout.
* ``ENOBUFS``: the response ring is full (:class:`ResponseRingFull`).
* ``EPIPE`` / ``ECONNRESET``: the service hung up (:class:`ServiceGone`).
* anything else: what a service error reply carried (:class:`ServiceError`),
  or a reader's ``EINVAL`` (:class:`FormatError`).
"""

from __future__ import annotations

import errno as _errno

__all__ = [
    "FaultringError",
    "ServiceError",
    "ProtocolError",
    "DescriptorError",
    "RegionError",
    "ProducerBroken",
    "ResponseRingFull",
    "ServiceGone",
    "FormatError",
]


class FaultringError(OSError):
    """Base class of every faultring error: ``FaultringError(errno, reason)``.

    ``e.errno`` is the error number and ``e.reason`` (also ``e.strerror``)
    the message, which names the field and the value at fault.
    """

    def __init__(self, err: int, reason: str) -> None:
        super().__init__(err, reason)

    @property
    def reason(self) -> str:
        """The human-readable reason (the same as ``strerror``)."""
        return self.strerror

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        return f"[{name}] {self.strerror}"


class ServiceError(FaultringError):
    """The service answered a request with an error reply.

    ``errno`` and ``reason`` are exactly what the reply carried; ``command``
    is the name of the refused request (``"ATTACH"``, ...), ``request_id``
    its id.
    """

    def __init__(self, err: int, reason: str, command: str = "", request_id: int = 0) -> None:
        super().__init__(err, reason)
        self.command = command
        self.request_id = request_id

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        what = f"{self.command} refused" if self.command else "error reply"
        return f"[{name}] {what}: {self.strerror}"


class ProtocolError(FaultringError):
    """A control message from the service broke the protocol (``EPROTO``)."""

    def __init__(self, reason: str, err: int = _errno.EPROTO) -> None:
        super().__init__(err, reason)


class DescriptorError(FaultringError):
    """A descriptor the service sent is not what the ABI promises (``EBADF``)."""

    def __init__(self, reason: str, err: int = _errno.EBADF) -> None:
        super().__init__(err, reason)


class RegionError(FaultringError):
    """A shared region's header is not a valid faultring queue (``EBADMSG``)."""

    def __init__(self, reason: str, err: int = _errno.EBADMSG) -> None:
        super().__init__(err, reason)


class ProducerBroken(FaultringError):
    """The producer's index is impossible (``fault_prod - fault_cons > entry_count``).

    The queue cannot be trusted any more; close it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(_errno.EPROTO, reason)


class ResponseRingFull(FaultringError):
    """No free response slot: the producer has not consumed the ring yet (``ENOBUFS``).

    Nothing was written. :meth:`Queue.commit` what is pending, wait for room
    with :meth:`Queue.wait_for_response_room`, then answer again.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(_errno.ENOBUFS, reason)


class ServiceGone(FaultringError):
    """The control connection hung up: the service exited or dropped us."""

    def __init__(self, reason: str, err: int = _errno.ECONNRESET) -> None:
        super().__init__(err, reason)


class FormatError(FaultringError, ValueError):
    """A fixture or storm report is malformed (``EINVAL``).

    ``path`` is the file, ``field`` the dotted path of the bad field (for
    example ``events[12].prgi``); the message names both and the value.
    """

    def __init__(self, path: str, field: str, message: str) -> None:
        where = f"{path}: field \"{field}\"" if field else f"{path}"
        super().__init__(_errno.EINVAL, f"{where}: {message}")
        self.path = path
        self.field = field
