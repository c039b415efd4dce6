"""The parser fuzz harness (tests/feedhandler/fuzzing.py) on the id-keyed venues' captures:
mutated frames never raise, and every book is then exact or stale."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from feedhandler.venues.base import ParserBase
from tests.feedhandler.fuzzing import Case, capture_items, mutate

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "40"))
FREE_TEXT = ("trade_id", "trdMatchID", "conn_id", "ret_msg", "info", "timestamp")


def free_text(path: tuple[Any, ...]) -> bool:
    """Free-form strings: another string there is another valid message."""
    return bool(path) and path[-1] in FREE_TEXT


def fuzz_test(name: str, capture: Path, make: Callable[[], ParserBase]) -> Callable[[], None]:
    """A hypothesis test mutating inputs 1..300 (the instrument answer, input 0, is kept:
    mutated units make other integers of the same book)."""

    @functools.cache
    def case() -> Case:
        return Case(name, capture_items(capture), make, 1, 300, chained=False, free_text=free_text)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test(data: st.DataObject) -> None:
        c = case()
        i = data.draw(st.sampled_from(c.candidates()), label="input")
        description, mutated, lie = data.draw(mutate(c.items[i][2], c.free_text), label="mutation")
        note(f"{name} input {i} ({c.items[i][0]}): {description}")
        c.run(i, mutated, lie)

    return test
