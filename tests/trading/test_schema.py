"""Order entry's schema step is total, and what it lets through never makes the venue
raise: any frame becomes a coded reject, or a message the venue checks (and, when it is
accepted, applies) without an exception."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hub.nasty import EXAMPLES, messages, raw_frames
from tests.trading.venues import ALICE, OPERATOR, venue
from trading import schema
from trading.messages import Original, Reject

VENUE, _LOG = venue()
DECIMALS = st.sampled_from(
    ["64900.00", "65000.00", "0.01", "1", "0", "-1", "1e3", "46116860184273.87904", "9" * 39]
)
FIELDS = {
    "op": st.sampled_from([*schema.SCHEMAS, "logon", "x"]),
    "cl_ord_id": st.sampled_from(["a1", "a2", "a3", "b" * 64, "c" * 65]),
    "orig_cl_ord_id": st.sampled_from(["a1", "a2", "nope"]),
    "order_id": st.sampled_from([str(10**12), 10**12, 10**12 + 1, "abc", "-1", 2**64 - 1]),
    "symbol": st.sampled_from(["BTC-USD", "ETH-USD", "NOPE"]),
    "side": st.sampled_from(["buy", "sell", "hold"]),
    "type": st.sampled_from(["limit", "market", "stop", "stop_limit"]),
    "price": DECIMALS,
    "qty": DECIMALS,
    "stop_price": DECIMALS,
    "display_qty": DECIMALS,
    "tif": st.sampled_from(["gtc", "ioc", "fok"]),
    "post_only": st.booleans(),
    "stp": st.sampled_from(["allow", "cancel_both", "decrement"]),
    "from_seq": st.integers(-1, 2**64),
    "on": st.booleans(),
    "state": st.sampled_from(["open", "halted", "closed"]),
}
REASONS_BEFORE_THE_VENUE = {"bad_message", "bad_field"}
ts = 10


def judge(data: str | bytes, account: int) -> None:
    global ts
    op, out = schema.parse(data)
    assert op == "?" or op in schema.SCHEMAS
    if isinstance(out, Reject):
        assert out.reason in REASONS_BEFORE_THE_VENUE
        assert len(orjson.dumps(out.report(op))) < 500
        return
    assert orjson.dumps(out)  # what passed can be encoded again (the order's fingerprint)
    ts += 1
    if op == "resend":
        assert type(out["from_seq"]) is int and out["from_seq"] >= 1
        return
    if op == "status":
        status = VENUE.status(account, out)
        assert isinstance(status, Reject) or status["type"] == "status"
        return
    answer = VENUE.check(account, out, ts)
    if isinstance(answer, Reject):
        assert len(orjson.dumps(answer.report(op))) < 500
    elif not isinstance(answer, Original):
        VENUE.apply(answer)  # accepted: the engine takes it


@st.composite
def order_messages(draw: st.DrawFn) -> str:
    """A message of one op with that op's fields (each may be of a wrong type), or now and
    then one with the fields of every op or no valid op at all."""
    op = draw(st.sampled_from([*schema.SCHEMAS, "new", "new", "new", "logon", "x"]))
    if op not in schema.SCHEMAS or draw(st.integers(0, 19)) == 0:
        return draw(messages(FIELDS))
    own = {k: v for k, v in FIELDS.items() if k in schema.SCHEMAS[op] and k != "op"}
    return draw(messages(own, {"op": op}, wrong=draw(st.sampled_from([3, 10, 1000]))))


@settings(max_examples=EXAMPLES, deadline=None)
@given(order_messages(), st.sampled_from([ALICE, ALICE, OPERATOR]))
def test_any_order_message_is_a_coded_reject_or_runs_cleanly(data: str, account: int) -> None:
    judge(data, account)


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw_frames)
def test_any_frame_is_a_coded_reject_or_runs_cleanly(data: str | bytes) -> None:
    judge(data, ALICE)


@pytest.mark.parametrize(
    ("message", "reason", "field"),
    [
        ({"op": "new", "cl_ord_id": "a", "side": ["buy"]}, "bad_field", "side"),
        ({"op": "new", "cl_ord_id": "a", "tif": {"gtc": 1}}, "bad_field", "tif"),
        ({"op": "new", "cl_ord_id": "a", "qty": 1}, "bad_field", "qty"),
        ({"op": "new", "cl_ord_id": "a", "nope": 1}, "bad_field", "nope"),
        ({"op": "mass_cancel", "symbol": ["BTC-USD"]}, "bad_field", "symbol"),
        ({"op": "cancel", "order_id": True}, "bad_field", "order_id"),
        ({"op": "resend"}, "bad_field", "from_seq"),
        ({"op": "resend", "from_seq": 0}, "bad_field", "from_seq"),
        ({"op": "status", "orig_cl_ord_id": "x" * 65}, "bad_field", "orig_cl_ord_id"),
        ({"op": "logon", "key": "k"}, "bad_message", "unknown op"),
        ({"op": 7}, "bad_message", "unknown op"),
    ],
)
def test_rejects_name_the_field(message: dict[str, object], reason: str, field: str) -> None:
    _op, out = schema.parse(orjson.dumps(message).decode())
    assert isinstance(out, Reject) and out.reason == reason and field in out.text, out
    if out.reason == "bad_field" and "cl_ord_id" in message:
        assert out.cl_ord_id == message["cl_ord_id"]  # the trader can match the reject


def test_a_first_logon_message_gives_its_credential() -> None:
    assert schema.credential('{"op": "logon", "key": "k1"}') == "k1"
    assert schema.credential('{"op": "logon", "token": "t1", "key": "k1"}') == "t1"
    for bad in ('{"op": "logon", "key": ["k1"]}', b'{"op": "logon", "key": "k1"}', "[", "{}"):
        assert schema.credential(bad) == ""
