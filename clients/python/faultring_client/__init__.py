"""faultring_client: a pure-Python client of the faultring service.

* :class:`Client`: the control connection (HELLO, ATTACH, DETACH, STATS, BYE,
  reconnect).
* :class:`Queue`: the shared-memory fault queue (read records, answer page
  requests, wait on the doorbell).
* :mod:`faultring_client.fixtures` and :mod:`faultring_client.storm`:
  readers of capture fixtures and storm ``report.json`` files.

Standard library only; Linux on x86-64, whose ordering of plain loads and
stores the ABI's Python rules (Docs/ABI.md section 3) rely on.
"""

from .abi import (
    ABI_V1,
    ABI_V2,
    FAULT_DMA_UNRECOV,
    FAULT_LOST,
    FAULT_PAGE_REQ,
    RESP_FAILURE,
    RESP_INVALID,
    RESP_SUCCESS,
    STATE_CLOSED,
    STATE_RUNNING,
    STATE_STARTING,
    UnknownRecord,
    V1PageRequest,
    V1Unrecoverable,
    V2Fault,
    V2Lost,
)
from .client import RETRYABLE_ERRNOS, Client
from .errors import (
    DescriptorError,
    FaultringError,
    FormatError,
    ProducerBroken,
    ProtocolError,
    RegionError,
    ResponseRingFull,
    ServiceError,
    ServiceGone,
)
from .queue import ConsumerCounters, ProducerCounters, Queue, WaitResult

__version__ = "0.1.0"

__all__ = [
    "ABI_V1", "ABI_V2", "FAULT_DMA_UNRECOV", "FAULT_LOST", "FAULT_PAGE_REQ",
    "RESP_FAILURE", "RESP_INVALID", "RESP_SUCCESS",
    "STATE_CLOSED", "STATE_RUNNING", "STATE_STARTING",
    "UnknownRecord", "V1PageRequest", "V1Unrecoverable", "V2Fault", "V2Lost",
    "Client", "RETRYABLE_ERRNOS", "Queue", "WaitResult", "ConsumerCounters", "ProducerCounters",
    "FaultringError", "ServiceError", "ProtocolError", "DescriptorError", "RegionError",
    "ProducerBroken", "ResponseRingFull", "ServiceGone", "FormatError",
]
