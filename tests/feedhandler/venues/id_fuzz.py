"""The parser fuzz harness (tests/feedhandler/fuzzing.py) on the id-keyed venues' captures:
mutated frames never raise, and every book is then exact or stale."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from feedhandler.venues.base import ParserBase
from tests.feedhandler.fuzzing import Case, capture_items, fuzzed

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

    @fuzzed
    def test(data: st.DataObject) -> None:
        case().fuzz(data)

    return test
