"""Errors of the hub's services (the book core has its own: orderbook_core.errors).

HubError                   base; ``retriable`` says whether retrying can help
├── BadInput               input from outside (a file, a frame, a client's or peer's
│   │                      message, a setting) cannot be used; the message names it
│   ├── ConfigError        a setting is unknown, missing or of the wrong type
│   ├── BadMessage         a message from a peer or the bus cannot be decoded or applied
│   └── ...                every format's own: CaptureError, LobsterError, DatabentoError,
│                          ItchFileError, JournalError, ProtocolError, the client's mirror
│                          errors (SequenceGap, ChecksumMismatch, OrderBookMismatch)
└── ServiceError           a service the hub depends on failed
    └── ServiceUnavailable Kafka, Redis or PostgreSQL cannot be reached (retriable)

Retry code reads ``retriable`` (``is_retriable`` also knows the drivers' own errors);
bad input is never retried: the same bytes fail the same way.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of the hub's own errors."""

    retriable = False


class BadInput(HubError, ValueError):
    """Input from outside the process cannot be used; the message names the input
    (file and line, venue and frame, client and request). Also a ``ValueError``."""


class ConfigError(BadInput):
    """The configuration is invalid; the message names the setting."""


class BadMessage(BadInput):
    """A message from a peer or the bus cannot be decoded or applied."""


class ServiceError(HubError):
    """A service the hub depends on failed."""


class ServiceUnavailable(ServiceError):
    """A backing service cannot be reached at its configured address."""

    retriable = True

    def __init__(self, service: str, address: str, reason: str) -> None:
        super().__init__(f"{service} unreachable at {address}: {reason}")
        self.service = service
        self.address = address
        self.reason = reason
