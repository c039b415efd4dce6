"""Credentials and message-rate limits shared by the order gateway and the fanout nodes.

A client proves who it is with its API key itself or with a JWT (HS256, signed
with that key, ``sub`` naming the holder, ``exp`` required): the token lets a
browser or a short-lived job connect without ever holding the key. A token lives
at most ``max_lifetime_s`` (``exp - iat``, or ``exp - now`` without ``iat``), so a
leaked one cannot stand in for the key for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import jwt

T = TypeVar("T")

MIN_KEY_LENGTH = 32
"""Shortest API key accepted (it is also an HS256 secret)."""
MAX_TOKEN_LIFETIME_S = 86400.0
"""Default longest token lifetime (orders.max_token_lifetime_s, fanout.max_token_lifetime_s)."""
LEEWAY_S = 5
"""Clock skew allowed on ``exp``, ``iat`` and the lifetime."""
MAX_CREDENTIAL = 4096
"""Longest API key or token read."""


def authenticate(
    credential: object,
    by_key: Callable[[str], T | None],
    by_subject: Callable[[str], T | None],
    secret: Callable[[T], str],
    max_lifetime_s: float = MAX_TOKEN_LIFETIME_S,
) -> tuple[T | None, str]:
    """(holder, "") or (None, why refused). Anything shaped like a JWT is checked as one:
    its ``sub`` names the holder, whose key must have signed it, and it may live at most
    ``max_lifetime_s`` seconds (0: no maximum); anything else is looked up as an API key."""
    if not isinstance(credential, str) or not credential:
        return None, "no API key or token"
    if len(credential) > MAX_CREDENTIAL:
        return None, f"API key or token over {MAX_CREDENTIAL} characters"
    if credential.count(".") != 2:
        holder = by_key(credential)
        return (holder, "") if holder is not None else (None, "unknown API key")
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
        holder = by_subject(str(claims.get("sub", "")))
        if holder is None:
            return None, "token for an unknown subject"
        jwt.decode(
            credential,
            secret(holder),
            algorithms=["HS256"],
            options={"require": ["exp", "sub"]},
            leeway=LEEWAY_S,
        )
        # Seconds the token is valid for: from its issue time when it has one, else from now.
        iat = claims.get("iat")
        lifetime = float(claims["exp"]) - (time.time() if iat is None else float(iat))
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        return None, f"invalid token: {str(exc)[:200]}"
    if max_lifetime_s > 0 and lifetime > max_lifetime_s + LEEWAY_S:
        return None, (
            f"invalid token: lifetime of {lifetime:.6g} s is over the maximum of "
            f"{max_lifetime_s:.6g} s"
        )
    return holder, ""


def make_token(subject: str, key: str, ttl_s: float = 3600.0) -> str:
    """A token for ``subject`` signed with its API key, valid for ``ttl_s`` seconds."""
    return jwt.encode({"sub": subject, "exp": int(time.time() + ttl_s)}, key, algorithm="HS256")


@dataclass
class RateLimit:
    """A token bucket: ``rate`` messages per second, bursts of two seconds' worth."""

    rate: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = 2 * self.rate

    def take(self, now: float) -> bool:
        """Take one token (one message) if the bucket has it."""
        return self.take_up_to(1, now) == 1

    def take_up_to(self, n: int, now: float) -> int:
        """Take as many of ``n`` tokens as the bucket holds; how many were taken (``n``
        when there is no limit)."""
        if self.rate <= 0:
            return n
        self.tokens = min(2 * self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        taken = max(0, min(n, int(self.tokens)))
        self.tokens -= taken
        return taken
