"""The client-message parser is total: any input is a Request or a ProtocolError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.protocol import (
    CHANNELS,
    OPS,
    ChannelRequest,
    ProtocolError,
    Request,
    parse_request,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
channel_items = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.sampled_from([*CHANNELS, "nope"]) | json_values,
        "symbol": st.sampled_from(["BTC-USD", ""]) | json_values,
        "venue": st.sampled_from(["SIM"]) | json_values,
        "depth": st.integers(-5, 2000) | json_values,
        "checksum": st.booleans() | json_values,
        "interval": st.sampled_from([1, 60, 7]) | json_values,
        "resume_from": st.integers(-1, 2**64) | json_values,
    },
)
requests = st.fixed_dictionaries(
    {"op": st.sampled_from([*OPS, "x"]) | json_values},
    optional={
        "id": json_values,
        "channels": st.lists(channel_items | json_values, max_size=5) | json_values,
        "token": json_values,
    },
)


def check(data: str | bytes) -> None:
    try:
        req = parse_request(data)
    except ProtocolError as exc:
        assert exc.code and str(exc)
        return
    assert isinstance(req, Request) and req.op in OPS
    for item in req.channels:
        if isinstance(item, ChannelRequest):
            assert item.channel in CHANNELS and item.symbol
            assert 0 <= item.depth <= 1000
            assert item.checksum is False or item.channel == "book"


@settings(max_examples=1500, deadline=None)
@given(requests)
def test_structured_requests_never_crash_the_parser(msg: dict[str, Any]) -> None:
    check(json.dumps(msg))  # stdlib: integers beyond 64 bits are sent too


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=200))
def test_arbitrary_text_and_bytes_never_crash_the_parser(data: str | bytes) -> None:
    check(data)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"{}", "binary_frame"),
        ("{", "bad_json"),
        ("[]", "bad_request"),
        ('{"op": "dance"}', "unknown_op"),
        ('{"op": "subscribe"}', "bad_request"),
        ('{"op": "subscribe", "channels": []}', "bad_request"),
        ('{"op": "ping", "id": true}', "bad_request"),
        ('{"op": "auth"}', "bad_request"),
        ('{"op": "subscribe", "channels": [' + ",".join(["{}"] * 201) + "]}", "too_many"),
        ("x" * 70_000, "too_large"),
    ],
)
def test_stable_error_codes(data: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_request(data)
    assert err.value.code == code


def test_entries_are_refused_one_by_one() -> None:
    req = parse_request(
        '{"op": "subscribe", "id": "a", "channels": ['
        '{"channel": "book", "symbol": "X", "depth": 10, "checksum": true, "resume_from": 5},'
        '{"channel": "book", "symbol": "X", "depth": 0},'
        '{"channel": "candles", "symbol": "X", "interval": 300},'
        '{"channel": "trades", "symbol": "X", "checksum": true}]}'
    )
    first, second, third, fourth = req.channels
    assert isinstance(first, ChannelRequest)
    assert first == ChannelRequest("book", "X", None, 10, True, 0, 5, first.raw)
    assert isinstance(second, ProtocolError) and second.code == "bad_request"
    assert isinstance(third, ChannelRequest) and third.interval == 300
    assert isinstance(fourth, ChannelRequest) and fourth.checksum is False
