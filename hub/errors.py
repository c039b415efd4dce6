"""Errors of the hub's services (the book core has its own: orderbook_core.errors).

HubError                 base; ``retriable`` says whether retrying can help
├── ConfigError          a setting is unknown, missing or of the wrong type
├── ServiceUnavailable   Kafka, Redis or PostgreSQL cannot be reached (retriable)
└── BadMessage           a message could not be decoded or is inconsistent
"""

from __future__ import annotations


class HubError(Exception):
    """Base of the hub's own errors."""

    retriable = False


class ConfigError(HubError):
    """The configuration is invalid; the message names the setting."""


class ServiceUnavailable(HubError):
    """A backing service cannot be reached at its configured address."""

    retriable = True

    def __init__(self, service: str, address: str, reason: str) -> None:
        super().__init__(f"{service} unreachable at {address}: {reason}")
        self.service = service
        self.address = address
        self.reason = reason


class BadMessage(HubError):
    """A message from a peer or the bus cannot be decoded or applied."""
