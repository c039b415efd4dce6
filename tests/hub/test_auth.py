"""Credentials: any string is a holder or a reason, never an exception; a token's lifetime
is bounded (exp - iat, or exp - now without iat)."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.auth import RateLimit, authenticate
from tests.hub.nasty import EXAMPLES, deep_text, json_values

KEY = "k" * 40


def check(credential: object, max_lifetime_s: float = 86400.0) -> tuple[str | None, str]:
    return authenticate(
        credential,
        lambda k: "A" if k == KEY else None,
        lambda s: "A",
        lambda h: KEY,
        max_lifetime_s,
    )


def b64(data: str) -> str:
    return base64.urlsafe_b64encode(data.encode()).rstrip(b"=").decode()


@st.composite
def token_shaped(draw: st.DrawFn) -> str:
    """Three dot-separated parts: JSON (any value, or nested deep) or garbage, maybe signed."""
    part = st.one_of(json_values.map(json.dumps), deep_text, st.text(max_size=30))
    header = draw(st.just('{"alg": "HS256", "typ": "JWT"}') | part)
    payload = draw(part | st.builds(lambda e: json.dumps({"sub": "a", "exp": e}), json_values))
    return f"{b64(header)}.{b64(payload)}.{draw(st.text(max_size=50))}"


@settings(max_examples=EXAMPLES, deadline=None)
@given(token_shaped() | json_values | st.text(max_size=5000))
def test_any_credential_is_a_holder_or_a_reason(credential: object) -> None:
    holder, why = check(credential)
    assert (holder is None) == bool(why)
    assert len(why) < 400


def token(**claims: object) -> str:
    return jwt.encode({"sub": "a", **claims}, KEY, algorithm="HS256")


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        ({"exp": 253402300799}, False),  # the year 9999
        ({"exp": time.time() + 3600}, True),
        ({"exp": time.time() + 86400}, True),
        ({"exp": time.time() + 90000}, False),
        ({"exp": time.time() + 3600, "iat": time.time() - 2 * 86400}, False),
        ({"exp": time.time() + 3600, "iat": time.time()}, True),
        ({"exp": 2**70}, False),
    ],
)
def test_a_token_lives_at_most_the_maximum(claims: dict[str, float], ok: bool) -> None:
    claims = {k: int(v) for k, v in claims.items()}
    holder, why = check(token(**claims))
    assert (holder == "A") is ok, why
    if not ok:
        assert "lifetime" in why and "86400" in why
    assert check(token(**claims), max_lifetime_s=0)[0] == "A" or claims["exp"] >= 2**63


def test_take_up_to_takes_what_the_bucket_holds() -> None:
    limit = RateLimit(10.0)
    now = limit.at
    assert limit.take_up_to(5, now) == 5
    assert limit.take_up_to(100, now) == 15  # the rest of the 2 s burst
    assert not limit.take(now)
    assert limit.take_up_to(3, now + 0.25) == 2  # 2.5 tokens refilled: two whole ones
    assert RateLimit(0).take_up_to(7, now) == 7  # no limit
