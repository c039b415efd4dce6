"""The strict schema step is total: any frame is a clean object or a coded Refusal, and a
clean object can always be encoded again."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import wire
from tests.hub.nasty import EXAMPLES, json_values, messages, nested, raw_frames

CODES = {"binary_frame", "too_large", "bad_json", "not_object", "too_deep", "bad_field"}
SCHEMA: wire.Schema = {
    "name": wire.Field("text", 8, required=True),
    "amount": wire.Field("decimal", 10),
    "n": wire.Field("int", low=0, high=10),
    "flag": wire.Field("bool"),
    "ref": wire.Field("id", 8),
    "items": wire.Field("list", 3),
}
FIELDS = {
    "name": st.just("abc"),
    "amount": st.just("1.5"),
    "n": st.integers(-1, 11),
    "flag": st.booleans(),
    "ref": st.sampled_from([1, "r"]),
    "items": st.lists(st.integers(), max_size=4),
}


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def judge(data: str | bytes, max_depth: int = 4) -> None:
    out = wire.decode(data, 4096, max_depth)
    if isinstance(out, wire.Refusal):
        assert out.code in CODES and out.text and len(out.text) < 300
        return
    assert isinstance(out, dict) and depth(out) <= max_depth
    orjson.dumps(out)
    problem = wire.check(out, SCHEMA)
    if problem is not None:
        assert problem.code == "bad_field" and problem.field and problem.field in problem.text
        assert len(problem.text) < 300
        return
    assert isinstance(out["name"], str) and 1 <= len(out["name"]) <= 8
    assert type(out.get("n", 0)) is int and 0 <= out.get("n", 0) <= 10
    assert isinstance(out.get("items", []), list) and len(out.get("items", [])) <= 3


@settings(max_examples=EXAMPLES, deadline=None)
@given(messages(FIELDS))
def test_any_message_is_clean_or_refused_with_a_code(data: str) -> None:
    judge(data)


@settings(max_examples=EXAMPLES, deadline=None)
@given(raw_frames | json_values.map(json.dumps))
def test_any_frame_is_clean_or_refused_with_a_code(data: str | bytes) -> None:
    judge(data)


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        (b"{}", "binary_frame", ""),
        ("x" * 5000, "too_large", ""),
        ('{"name": "' + "é" * 2100 + '"}', "too_large", ""),  # 4200 bytes of UTF-8
        ("{", "bad_json", ""),
        (nested(1100), "bad_json", ""),
        ("[1]", "not_object", ""),
        ('{"name": "a", "items": ' + nested(300) + "}", "too_deep", "items[0][0]"),
        ('{"a": {"b": {"c": {"d": {"e": 1}}}}}', "too_deep", "a.b.c"),
        ('{"items": [' + ",".join(["[]"] * 600) + "]}", "too_large", ""),  # > 512 containers
        ('{"name": ["a"]}', "bad_field", "name"),
        ('{"name": "a", "n": true}', "bad_field", "n"),
        ('{"name": "a", "n": 1.0}', "bad_field", "n"),
        ('{"name": "a", "ref": false}', "bad_field", "ref"),
        ('{"name": "a", "amount": 1.5}', "bad_field", "amount"),
        ('{"name": "a", "' + "k" * 100 + '": 1}', "bad_field", "k" * 37 + "..."),
        ('{"n": 1}', "bad_field", "name"),
    ],
)
def test_refusals_name_their_code_and_field(data: str | bytes, code: str, field: str) -> None:
    out = wire.decode(data, 4096, 4)
    if not isinstance(out, wire.Refusal):
        out = wire.check(out, SCHEMA) or out
    assert isinstance(out, wire.Refusal), out
    assert (out.code, out.field) == (code, field)
    assert len(out.text) < 200


def test_a_clean_message_is_the_object_sent() -> None:
    data = '{"name": "abc", "amount": "1.25", "n": 3, "flag": false, "ref": 7, "items": [[1]]}'
    out = wire.decode(data, 4096, 4)
    assert out == orjson.loads(data)
    assert isinstance(out, dict) and wire.check(out, SCHEMA) is None
