"""The strict first step of every client message on both ports (order entry and fanout):
bounded JSON decoding and typed fields, answered with a coded refusal that names the
field, never with an exception.

A message is refused before anything else reads it when it is a binary frame, larger
than its port's byte limit, not JSON, not an object, nested deeper than the depth limit,
or when one of its fields has the wrong type or length. What passes holds, in every
field the schema knows, a value of the declared type: later checks compare strings
with strings, never meet an unhashable list, and can always encode a value again
(orjson writes at most 254 levels while it reads 1024).

Everything here is sans-I/O and total: ``decode`` and ``check`` return a value or a
``Refusal`` for any input (fuzzed in tests/hub/test_wire.py and per port).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

MAX_DEPTH = 8
"""Default nesting limit: an object is level 1, a list or object inside it level 2, …"""
MAX_CONTAINERS = 512
"""Default limit on the lists and objects one message holds (the fanout protocol needs
at most 202: a request, its channel list and 200 entries)."""
MAX_SHOWN = 40
"""Characters of a client value quoted back in a refusal's text."""
INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is refused: a stable ``code``, the field at fault and a text for people."""

    code: str
    """``binary_frame``, ``too_large``, ``bad_json``, ``not_object``, ``too_deep`` or
    ``bad_field``."""
    field: str
    """The field at fault as a path (``channels[2].depth``); "" for the whole message."""
    text: str


@dataclass(frozen=True, slots=True)
class Field:
    """What one field may hold.

    ``kind``: ``text`` (a string of ``min_len``..``max_len`` characters), ``decimal`` (a
    decimal string such as "1.25", at most ``max_len`` characters), ``int`` (an integer,
    not a boolean, from ``low`` to ``high``), ``bool``, ``id`` (a string of at most
    ``max_len`` characters or an integer) or ``list`` (at most ``max_len`` items, which
    the caller checks one by one)."""

    kind: str
    max_len: int = 64
    min_len: int = 1
    low: int = -INT64 - 1
    high: int = INT64
    required: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this field (None: nothing)."""
        kind = self.kind
        if kind == "text" or kind == "decimal":
            if type(value) is str and self.min_len <= len(value) <= self.max_len:
                return None  # the common case first: order entry's hot path
            if not isinstance(value, str):
                if kind == "decimal":
                    return f'must be a decimal string such as "1.25", got {shown(value)}'
                return f"must be a string, got {shown(value)}"
            if not self.min_len <= len(value) <= self.max_len:
                return f"must be {self.min_len} to {self.max_len} characters, got {len(value)}"
            return None
        if kind == "int":
            if type(value) is not int or not self.low <= value <= self.high:
                return f"must be an integer from {self.low} to {self.high}, got {shown(value)}"
            return None
        if kind == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {shown(value)}"
        if kind == "id":
            if type(value) is int and -INT64 - 1 <= value <= 2 * INT64 + 1:
                return None
            if isinstance(value, str) and 1 <= len(value) <= self.max_len:
                return None
            return f"must be an integer or a string of 1 to {self.max_len} characters"
        if kind == "list":
            if not isinstance(value, list):
                return f"must be a list, got {shown(value)}"
            if len(value) > self.max_len:
                return f"must have at most {self.max_len} items, got {len(value)}"
            return None
        raise AssertionError(f"unknown field kind {kind!r}")  # a programming error


Schema = Mapping[str, Field]


def shown(value: Any) -> str:
    """A client value as quoted in a refusal: containers by kind, scalars shortened."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def name(key: str) -> str:
    """A field name as written in a refusal (client-chosen names are shortened)."""
    if not key:
        return '""'
    return key if len(key) <= MAX_SHOWN else key[: MAX_SHOWN - 3] + "..."


def decode(
    data: str | bytes,
    max_bytes: int,
    max_depth: int = MAX_DEPTH,
    max_containers: int = MAX_CONTAINERS,
) -> dict[str, Any] | Refusal:
    """One client message as an object, or why not: text frames only, at most ``max_bytes``
    bytes of UTF-8, valid JSON, an object, at most ``max_depth`` levels deep and holding at
    most ``max_containers`` lists and objects (so checking its shape costs little)."""
    if not isinstance(data, str):
        return Refusal("binary_frame", "", "binary frame: send each message as a JSON text frame")
    size = len(data)
    if size > max_bytes or (
        not data.isascii() and (size := len(data.encode("utf-8", "surrogatepass"))) > max_bytes
    ):
        return Refusal("too_large", "", f"message of {size} bytes, over the limit of {max_bytes}")
    try:
        message = orjson.loads(data)
    except ValueError:  # orjson.JSONDecodeError: bad syntax, bad UTF-8, over 1024 levels
        return Refusal("bad_json", "", "message is not valid JSON")
    if not isinstance(message, dict):
        return Refusal("not_object", "", f"message must be a JSON object, got {shown(message)}")
    return shape(message, max_depth, max_containers) or message


def shape(value: dict[str, Any], max_depth: int, max_containers: int) -> Refusal | None:
    """Why ``value`` nests too deep (naming the first path past ``max_depth`` levels, at most
    three steps of it) or holds too many lists and objects; None when it does neither.
    Iterative, and it stops after ``max_containers`` containers, so any message orjson can
    read is walked quickly and without recursion."""
    for v in value.values():
        if type(v) is dict or type(v) is list:
            break
    else:
        return None  # a flat object, as every order-entry message is
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    seen = 1
    while stack:
        item, depth, path = stack.pop()
        if depth > max_depth:
            return Refusal("too_deep", path, f"{path} is nested deeper than {max_depth} levels")
        near = not path or path.count(".") + path.count("[") < 2
        subs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, sub in subs:
            if isinstance(sub, dict | list):
                seen += 1
                if seen > max_containers:
                    return Refusal(
                        "too_large",
                        "",
                        f"message holds more than {max_containers} lists and objects",
                    )
                stack.append((sub, depth + 1, _step(path, key) if near else path))
    return None


def _step(path: str, key: str | int) -> str:
    """``path`` one step further: ``path[3]`` for a list item, ``path.name`` for a field."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{name(key)}" if path else name(key)


def check(
    message: Mapping[str, Any], schema: Schema, where: str = "", unknown: bool = False
) -> Refusal | None:
    """The first field of ``message`` that breaks ``schema`` (None: all hold). A field the
    schema does not name is refused unless ``unknown``; a required one must be present."""
    for key, value in message.items():
        spec = schema.get(key)
        if spec is None:
            if unknown:
                continue
            path = f"{where}.{name(key)}" if where else name(key)
            return Refusal("bad_field", path, f"unknown field {path}")
        problem = spec.problem(value)
        if problem is not None:
            path = f"{where}.{name(key)}" if where else name(key)
            return Refusal("bad_field", path, f"{path} {problem}")
    for key, spec in schema.items():
        if spec.required and key not in message:
            path = f"{where}.{key}" if where else key
            return Refusal("bad_field", path, f"{path} is required")
    return None
