"""Errors of the hub's services (the book core has its own: orderbook_core.errors).

HubError                        base; ``retriable`` says whether retrying can help
├── BadInput                    input from outside (a file, a frame, a client's or peer's
│   │                           message, a setting, a secret) cannot be used; the message
│   │                           names it. Also a ``ValueError``. Never retried: the same
│   │                           bytes fail the same way
│   ├── ConfigError             a setting is unknown, missing or of the wrong type
│   ├── BadMessage              a message from a peer or the bus cannot be decoded or applied
│   │   ├── MalformedFrame      a venue frame or REST answer (feedhandler.frames)
│   │   └── BadSnapshot         a stored book snapshot (bus.redis_store); retriable: the
│   │                           feed stores a fresh one every few hundred ms
│   ├── CaptureError            a capture file (feedhandler.files.capture)
│   ├── ItchFileError           an ITCH file, with the core's offset and message type
│   │                           (feedhandler.files.itch)
│   ├── LobsterError            LOBSTER message and orderbook files
│   ├── DatabentoError          Databento MBO files, CSV or DBN
│   ├── JournalError            the order path's journal (trading.journal)
│   ├── ProtocolError           a fanout client's request (fanout.protocol)
│   └── SequenceGap, ChecksumMismatch, OrderBookMismatch
│                               a node's stream the client's mirror cannot apply
│                               (client.market)
└── ServiceError                a service the hub depends on failed or refused the request
    │                           (PostgreSQL refused a statement); not retriable
    ├── MissingDatabase         PostgreSQL answers but has no database of the DSN's name
    │                           (hub.db; ``hub db create`` makes it)
    └── ServiceUnavailable      Kafka, Redis or PostgreSQL cannot be reached, is restarting
                                or dropped the connection (retriable)

Retry code reads ``exc.retriable`` and lists no driver types: a service's
driver errors are translated once, where the hub calls the driver (Kafka in
bus.kafka, Redis in bus.redis_store, PostgreSQL with hub.db.connect_async and
hub.db.postgres_errors). The ``hub`` command maps the branches to its exit
codes (app.cli): ConfigError 2, ServiceUnavailable 3, BadInput 1 (2 for
``hub replay`` and ``hub capture``), any other HubError 1.
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
