"""The garbage collector on the services' schedule (app/gc_schedule.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from app import gc_schedule
from hub.ops import PLATFORM


@pytest.fixture
def collector_state() -> Iterator[None]:
    """Whatever a test does to the collector is undone for the tests after it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class Node:
    def __init__(self) -> None:
        self.other: Node = self


def aged_cycle() -> weakref.ref[Node]:
    """A reference cycle that lives through two young collections (so only a full one can
    free it), then is dropped: garbage only the cyclic collector finds."""
    node = Node()
    gc.collect(1)
    gc.collect(1)
    return weakref.ref(node)


def test_full_collections_run_on_the_schedule_only(collector_state: None) -> None:
    before = gc.get_threshold()
    gc_schedule.scheduled(0.05)
    young, middle, full = gc.get_threshold()
    assert (young, middle) == before[:2] and full == gc_schedule.FULL_THRESHOLD
    assert gc.get_freeze_count() > 0  # what was imported is out of every later walk
    frozen = gc.get_freeze_count()

    garbage = aged_cycle()
    for _ in range(50):  # many young collections: none of them is a full one
        gc.collect(1)
    assert garbage() is not None

    async def schedule() -> None:
        task = asyncio.create_task(gc_schedule.collect(0.05, settle_s=0.05))
        await asyncio.sleep(0.03)
        assert garbage() is not None
        await asyncio.sleep(0.05)  # past settling: collected, and frozen again
        assert garbage() is None and gc.get_freeze_count() >= frozen
        later = aged_cycle()
        await asyncio.sleep(0.1)  # the next scheduled one
        assert later() is None
        task.cancel()

    asyncio.run(schedule())


def test_every_collection_pause_is_observed(collector_state: None) -> None:
    gc_schedule.timed()
    gc_schedule.timed()  # once per process, however often called
    assert sum(isinstance(cb, gc_schedule._Pauses) for cb in gc.callbacks) == 1
    before = full_pauses()
    gc.collect()
    count, seconds = full_pauses()
    assert count == before[0] + 1 and seconds > before[1]


def full_pauses() -> tuple[float, float]:
    """(count, total seconds) of the full collections' pauses as ``/metrics`` shows them."""
    labels = {"generation": "2"}
    count = PLATFORM.get_sample_value("python_gc_pause_seconds_count", labels)
    seconds = PLATFORM.get_sample_value("python_gc_pause_seconds_sum", labels)
    return count or 0.0, seconds or 0.0


def test_zero_leaves_pythons_own_schedule(collector_state: None) -> None:
    before = gc.get_threshold()
    gc_schedule.scheduled(0)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    asyncio.run(asyncio.wait_for(gc_schedule.collect(0), 1))  # returns at once
