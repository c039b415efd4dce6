"""The order-entry messages' schema: the strict first step (``hub.wire``) with the fields
each op may carry, so the session and the venue's checks only ever see messages of a
known op whose fields have the right types and bounded lengths.

Every order-entry message is a flat JSON object: no field holds a list or an object,
so a nested value is refused here, naming the field, before it can reach a set
lookup (unhashable) or the idempotency fingerprint (orjson writes 254 levels at most).
"""

from __future__ import annotations

from typing import Any

from hub import wire
from hub.auth import MAX_CREDENTIAL
from trading.messages import Reject

MAX_MESSAGE_BYTES = 4096
"""Longest order-entry message (UTF-8 bytes); frames over 64 KiB close with 1009."""
MAX_NESTING = 2
"""Deepest nesting read: the message object and one level more, so a list or object in
a field is named as such (anything deeper is refused as too deep)."""
MAX_NAME = 64
"""Longest cl_ord_id, orig_cl_ord_id and order id (characters)."""
MAX_SYMBOL = 32
MAX_DECIMAL = 40
"""Longest decimal string (price, qty, stop_price, display_qty)."""

_TEXT = wire.Field("text", 16)
_DECIMAL = wire.Field("decimal", MAX_DECIMAL)
_ID = wire.Field("text", MAX_NAME)
_ORDER = {"orig_cl_ord_id": _ID, "order_id": wire.Field("id", MAX_NAME)}
_OP = {"op": wire.Field("text", 32)}

SCHEMAS: dict[str, wire.Schema] = {
    "new": {
        **_OP,
        "cl_ord_id": _ID,
        "symbol": wire.Field("text", MAX_SYMBOL),
        "side": _TEXT,
        "type": _TEXT,
        "price": _DECIMAL,
        "qty": _DECIMAL,
        "tif": _TEXT,
        "post_only": wire.Field("bool"),
        "display_qty": _DECIMAL,
        "stop_price": _DECIMAL,
        "stp": _TEXT,
    },
    "cancel": {**_OP, **_ORDER},
    "replace": {**_OP, **_ORDER, "price": _DECIMAL, "qty": _DECIMAL},
    "mass_cancel": {**_OP, "symbol": wire.Field("text", MAX_SYMBOL)},
    "kill_switch": {**_OP, "on": wire.Field("bool")},
    "status": {**_OP, **_ORDER},
    "resend": {**_OP, "from_seq": wire.Field("int", low=1, required=True)},
    "symbol_state": {**_OP, "symbol": wire.Field("text", MAX_SYMBOL), "state": _TEXT},
}
"""Each op's fields (any other field is refused)."""
LOGON: wire.Schema = {
    **_OP,
    "key": wire.Field("text", MAX_CREDENTIAL),
    "token": wire.Field("text", MAX_CREDENTIAL),
}


def parse(data: str | bytes) -> tuple[str, dict[str, Any] | Reject]:
    """(op, message) or (op, refusal) for one message of a logged-on session; ``op`` is
    "?" unless the message named a known one. Never raises."""
    message = wire.decode(data, MAX_MESSAGE_BYTES, MAX_NESTING)
    if isinstance(message, wire.Refusal):
        return "?", _reject(message, {})
    op = message.get("op")
    schema = SCHEMAS.get(op) if isinstance(op, str) else None
    if schema is None or not isinstance(op, str):
        return "?", Reject(
            "bad_message", f"unknown op {wire.shown(op)}; one of {', '.join(SCHEMAS)}"
        )
    refusal = wire.check(message, schema)
    if refusal is not None:
        return op, _reject(refusal, message)
    return op, message


def credential(data: str | bytes) -> str:
    """The key or token of a first ``logon`` message ("" when it is anything else)."""
    message = wire.decode(data, MAX_MESSAGE_BYTES + MAX_CREDENTIAL, MAX_NESTING)
    if isinstance(message, wire.Refusal) or message.get("op") != "logon":
        return ""
    if wire.check(message, LOGON) is not None:
        return ""
    found = message.get("token") or message.get("key") or ""
    return found if isinstance(found, str) else ""


def _reject(refusal: wire.Refusal, message: dict[str, Any]) -> Reject:
    """The refusal as a reject: a field at fault is ``bad_field``, else ``bad_message``;
    a valid cl_ord_id comes back so the trader can match it."""
    cl = message.get("cl_ord_id")
    cl = (
        cl
        if isinstance(cl, str) and 0 < len(cl) <= MAX_NAME and refusal.field != "cl_ord_id"
        else ""
    )
    return Reject("bad_field" if refusal.field else "bad_message", refusal.text, cl)
