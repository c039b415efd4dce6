"""The client-message parser is total: any input is a Request or a ProtocolError, and
what it keeps to echo back is bounded."""

from __future__ import annotations

import json
from typing import Any

import orjson
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
from tests.hub.nasty import EXAMPLES, json_values, messages, raw_frames

channel_fields = {
    "channel": st.sampled_from([*CHANNELS, "nope"]),
    "symbol": st.sampled_from(["BTC-USD", "", "X" * 65]),
    "venue": st.sampled_from(["SIM", ""]),
    "depth": st.integers(-5, 2000),
    "checksum": st.booleans(),
    "interval": st.sampled_from([1, 60, 7]),
    "resume_from": st.integers(-1, 2**64),
}
channel_items = st.fixed_dictionaries(
    {}, optional={k: v | json_values for k, v in channel_fields.items()}
)
requests = st.fixed_dictionaries(
    {"op": st.sampled_from([*OPS, "x"]) | json_values},
    optional={
        "id": json_values,
        "channels": st.lists(channel_items | json_values, max_size=5) | json_values,
        "token": json_values,
    },
)


@st.composite
def nasty_requests(draw: st.DrawFn) -> str:
    """A request whose entries may hold deeply nested values (spliced in as raw JSON)."""
    entries = draw(st.lists(messages(channel_fields, wrong=5), min_size=1, max_size=4))
    op = draw(st.sampled_from(["subscribe", "unsubscribe", "ping"]))
    return f'{{"op": "{op}", "id": 1, "channels": [{", ".join(entries)}]}}'


def check(data: str | bytes) -> None:
    try:
        req = parse_request(data)
    except ProtocolError as exc:
        assert exc.code and str(exc) and len(str(exc)) < 300
        return
    assert isinstance(req, Request) and req.op in OPS
    assert len(orjson.dumps({"id": req.id})) < 64 * 6 + 20  # 64 characters, escaped
    for item in req.channels:
        if isinstance(item, ChannelRequest):
            assert item.channel in CHANNELS and item.symbol
            assert 0 <= item.depth <= 1000
            assert item.checksum is False or item.channel == "book"
            assert len(orjson.dumps({"request": item.raw})) < 400  # echoed in refusals
        else:
            assert len(str(item)) < 300


@settings(max_examples=EXAMPLES, deadline=None)
@given(requests)
def test_structured_requests_never_crash_the_parser(msg: dict[str, Any]) -> None:
    check(json.dumps(msg))  # stdlib: integers beyond 64 bits are sent too


@settings(max_examples=EXAMPLES, deadline=None)
@given(nasty_requests())
def test_nested_and_wrongly_typed_entries_never_crash_the_parser(data: str) -> None:
    check(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw_frames)
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
        ('{"op": "ping", "x": [' + ",".join(["[]"] * 21_000) + "]}", "too_large"),
        ('{"op": "ping", "id": ' + "[" * 300 + "]" * 300 + "}", "bad_request"),
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
    assert first == ChannelRequest("book", "X", None, 10, True, 0, 5, raw=first.raw)
    assert isinstance(second, ProtocolError) and second.code == "bad_request"
    assert isinstance(third, ChannelRequest) and third.interval == 300
    assert isinstance(fourth, ChannelRequest) and fourth.checksum is False
