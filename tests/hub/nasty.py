"""Hypothesis strategies for hostile client messages: any JSON-ish value (nested lists and
objects, integers past 64 bits, long and odd strings), nesting up to and past the limits,
and messages whose known fields get values of every wrong type.

``HUB_FUZZ_EXAMPLES`` sets the examples per fuzz test (a long run: 20000 or more)."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "400"))

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**64 + 2)
    | st.integers(min_value=-(2**63) - 2, max_value=-(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.text(min_size=60, max_size=300)
    | st.sampled_from(["", "0", "1e400", "-1", "1.5", "buy", "limit", "BTC-USD", "X", "\u0000"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=25,
)


def nested(depth: int, kind: str = "[") -> str:
    """JSON text nested ``depth`` levels deep (lists or objects)."""
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


deep_text = st.builds(nested, st.integers(1, 1100), st.sampled_from(["[", "{"]))
"""Nesting from harmless to past orjson's read limit (1024)."""


@st.composite
def messages(
    draw: st.DrawFn,
    fields: dict[str, st.SearchStrategy[Any]],
    fixed: dict[str, Any] | None = None,
    wrong: int = 4,
) -> str:
    """JSON text of an object holding ``fixed`` and fields from ``fields`` (each present or
    not; a valid value, or one time in ``wrong`` any JSON value), maybe an unknown field,
    and maybe one field spliced in as deeply nested raw JSON."""
    out: dict[str, Any] = dict(fixed or {})
    for name, valid in fields.items():
        if draw(st.booleans()):
            out[name] = draw(json_values if draw(st.integers(0, wrong - 1)) == 0 else valid)
    if draw(st.integers(0, 9)) == 0:
        out[draw(st.text(max_size=70))] = draw(json_values)
    text = json.dumps(out)  # stdlib: integers past 64 bits are written too
    if draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from([*fields, "x"]))
        splice = f"{json.dumps(key)}: {draw(deep_text)}"
        text = "{" + splice + ("" if text == "{}" else ", " + text[1:-1]) + "}"
    return text


raw_frames = (
    st.text(max_size=300)
    | st.binary(max_size=300)
    | deep_text
    | st.builds(lambda n: "x" * n, st.integers(60_000, 70_000))
)
"""Frames that are not even objects: text, bytes, deep nesting, oversized."""
