"""The pieces of a taken state join to the state's JSON, whatever members it has."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from trading import checkpoint
from trading.checkpoint import TakenState


@pytest.mark.parametrize(
    "state",
    [
        {"commands": 1, "accounts": {}},
        {"accounts": {"1001": {"reports": [], "by_cl": {}}}},
        {"accounts": {"1001": {"seq": 2}}},
        {
            "orders": [[1, "a"]],
            "accounts": {
                "1001": {"seq": 2},
                "1002": {
                    "seq": 5,
                    "reports": [{"seq": 1}, {"seq": 2}, {"seq": 3}],
                    "by_cl": {"a": ["X", 1, "f", {"seq": 1}], "b": ["X", 2, "g", {"seq": 2}]},
                },
            },
        },
    ],
)
def test_the_pieces_join_to_the_states_json(
    state: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "SLICE", 2)
    pieces = asyncio.run(TakenState(state).encoded())
    assert orjson.loads(b"".join(pieces)) == state
