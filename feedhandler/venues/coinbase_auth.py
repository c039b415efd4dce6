"""Coinbase Exchange API-key authentication for the WebSocket feed and REST.

The Exchange ``full``, ``level2`` (unbatched), ``level3`` and ``user`` channels
refuse unsigned subscriptions. A signed subscribe message carries ``key``,
``passphrase``, ``timestamp`` and ``signature`` as if it were a
``GET /users/self/verify`` request; a signed REST request carries the same
four values in ``CB-ACCESS-*`` headers. The signature is
base64(HMAC-SHA256(base64-decoded secret, timestamp + METHOD + path + body)).

Credentials come from the environment only (``COINBASE_API_KEY``,
``COINBASE_API_SECRET``, ``COINBASE_API_PASSPHRASE``), never from the config
file, and never reach a log line or a capture (``redact``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from hub.errors import BadInput

ENV_NAMES = ("COINBASE_API_KEY", "COINBASE_API_SECRET", "COINBASE_API_PASSPHRASE")
VERIFY_PATH = "/users/self/verify"
SECRET_FIELDS = ("key", "passphrase", "signature")


@dataclass(frozen=True)
class CoinbaseCredentials:
    key: str
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            base64.b64decode(self.secret, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput(
                "COINBASE_API_SECRET is not base64 (the Exchange API secret is)"
            ) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CoinbaseCredentials | None:
        """The credentials in ``env``, None when none are set; some but not all is an error."""
        values = [env.get(name, "") for name in ENV_NAMES]
        if not any(values):
            return None
        missing = [name for name, value in zip(ENV_NAMES, values, strict=True) if not value]
        if missing:
            raise BadInput(f"Coinbase credentials incomplete: {', '.join(missing)} not set")
        key, secret, passphrase = values
        return cls(key, secret, passphrase)

    def sign(self, timestamp: str, method: str, path: str, body: str = "") -> str:
        message = f"{timestamp}{method.upper()}{path}{body}".encode()
        digest = hmac.new(base64.b64decode(self.secret), message, hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _timestamp(self) -> str:
        return str(int(self.clock()))

    def subscribe_fields(self) -> dict[str, str]:
        """What a subscribe message adds to be signed (valid for 30 s from now)."""
        ts = self._timestamp()
        return {
            "signature": self.sign(ts, "GET", VERIFY_PATH),
            "key": self.key,
            "passphrase": self.passphrase,
            "timestamp": ts,
        }

    def rest_headers(self, url: str, method: str = "GET", body: str = "") -> dict[str, str]:
        """``CB-ACCESS-*`` headers for one request (the path includes the query string)."""
        parts = urlparse(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        ts = self._timestamp()
        return {
            "CB-ACCESS-KEY": self.key,
            "CB-ACCESS-SIGN": self.sign(ts, method, path, body),
            "CB-ACCESS-TIMESTAMP": ts,
            "CB-ACCESS-PASSPHRASE": self.passphrase,
        }


def redact(message: str) -> str:
    """A sent message with its credentials blanked (for captures and logs)."""
    try:
        obj = json.loads(message)
    except json.JSONDecodeError:
        return message
    if not isinstance(obj, dict) or not any(k in obj for k in SECRET_FIELDS):
        return message
    return json.dumps({k: "REDACTED" if k in SECRET_FIELDS else v for k, v in obj.items()})
