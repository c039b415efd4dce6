"""Recorded sources as one stream of the hub's events: venue captures, ITCH, LOBSTER and
Databento files, each named ``KIND:PATH``, opened with the same readers ``hub feed``
replays them with, and merged in event time.

Used by ``hub export`` (docs/export.md) and by the fanout nodes' ``/replay`` endpoint
(docs/protocol.md "Replay"), which is why a source can be confined to folders: a name
given over the network is resolved inside one of the node's ``replay_dirs`` and refused if
it points anywhere else (``..``, an absolute path, a link out).

Every stream starts with its ``Instrument`` (the units its integers are in) before its
first other event. Each source yields its events in file order; ``merged`` interleaves
the sources by event time (``event_time``), which is the file order of each whenever the
file is in time order (a venue that stamps out of order, as Crypto.com does, stays in
received order within its own source).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from feedhandler.files.databento import databento_batches
from feedhandler.files.itch import itch_batches, replay_itch
from feedhandler.files.lobster import lobster_batches
from feedhandler.files.pacing import Batch, OnError, log_bad_record
from feedhandler.files.replay import capture_batches, venue_of
from feedhandler.venues import VENUES
from feedhandler.venues.base import instrument_from
from hub.errors import BadInput
from hub.events import Event, Instrument

KINDS = ("capture", "itch", "lobster", "databento")
InstrumentFor = Callable[[str, str], Instrument | None]


def event_time(event: Event) -> int:
    """When an event happened: the venue's event time, or the receive time where the venue
    stamps none (some books: Gemini's ``l2_updates``); 0 for an instrument."""
    return getattr(event, "ts_event", 0) or getattr(event, "ts_recv", 0)


@dataclass(frozen=True)
class Source:
    """One recorded file and the reader it takes."""

    kind: str
    path: Path
    text: str
    """As it was asked for (what errors name)."""


def parse_source(text: str, roots: Iterable[Path] | None = None) -> Source:
    """``KIND:PATH`` checked now: BadInput naming it when the kind is unknown, the file
    cannot be read or (with ``roots``) the path is not a file inside one of them. With
    ``roots`` a relative PATH is looked up in each root in turn."""
    kind, _, name = text.partition(":")
    if kind not in KINDS or not name:
        raise BadInput(f"source {text!r}: write KIND:PATH, KIND one of {', '.join(KINDS)}")
    path = Path(name)
    if roots is not None:
        path = _confined(text, name, [Path(r) for r in roots])
    try:
        path.open("rb").close()
    except OSError as exc:
        raise BadInput(f"source {text}: {exc.strerror or exc}") from exc
    if kind == "capture" and venue_of(path) not in VENUES:
        raise BadInput(f"source {text}: venue {venue_of(path)!r} has no replay parser")
    return Source(kind, path, text)


def _confined(text: str, name: str, roots: list[Path]) -> Path:
    if not roots:
        raise BadInput(f"source {text}: this node replays no files (fanout.replay_dirs)")
    if Path(name).is_absolute() or ".." in Path(name).parts:
        raise BadInput(f"source {text}: name a file inside the replay folders, not a path")
    for root in roots:
        candidate = (root / name).resolve()
        if candidate.is_relative_to(root.resolve()) and candidate.is_file():
            return candidate
    raise BadInput(f"source {text}: no such file in the replay folders")


def batches_of(
    source: Source, symbols: Iterable[str] = (), on_error: OnError | None = None
) -> tuple[Iterator[Batch], InstrumentFor | None]:
    """A source's (receive time, events) batches as its reader gives them (what ``hub
    feed`` paces), and where a capture's instruments come from (its parser's units; the
    file formats carry theirs as events). ``symbols``: the ITCH stocks to replay (default
    every stock the file lists; the other readers replay everything)."""
    path, report = source.path, on_error or log_bad_record(source.path)
    if source.kind == "capture":
        parser = VENUES[venue_of(path)].parser()
        return capture_batches(path, parser, report), instrument_from(parser)
    if source.kind == "lobster":
        return lobster_batches(path, path.name.split("_", 1)[0], report), None
    if source.kind == "databento":
        return databento_batches(path, report), None
    stocks = [x.upper() for x in symbols] or replay_itch(path).symbols()
    return itch_batches(path, stocks, report), None


def open_source(
    source: Source, symbols: Iterable[str] = (), on_error: OnError | None = None
) -> Iterator[Event]:
    """A source's events in file order, each stream's instrument first."""
    return _instruments_first(*batches_of(source, symbols, on_error))


def _instruments_first(
    batches: Iterator[Batch], instrument_for: InstrumentFor | None
) -> Iterator[Event]:
    seen: set[tuple[str, str]] = set()
    for _ts, batch in batches:
        for e in batch:
            key = (e.venue, e.symbol)
            if isinstance(e, Instrument):
                seen.add(key)
            elif key not in seen and instrument_for is not None:
                found = instrument_for(*key)
                if found is not None:
                    seen.add(key)
                    yield found
            yield e


def merged(streams: Iterable[Iterator[Event]]) -> Iterator[Event]:
    """Several sources' events as one stream in event time (instruments stay in front of
    their streams: they sort at time 0 only among their own source's events)."""
    return heapq.merge(*streams, key=_merge_key)


def _merge_key(event: Event) -> int:
    return event_time(event)


def in_range(events: Iterable[Event], start_ns: int | None, end_ns: int | None) -> Iterator[Event]:
    """The events inside ``[start_ns, end_ns]`` (None: open), instruments always."""
    for e in events:
        if isinstance(e, Instrument):
            yield e
            continue
        at = event_time(e)
        if (start_ns is None or at >= start_ns) and (end_ns is None or at <= end_ns):
            yield e


def open_sources(
    texts: list[str],
    symbols: Iterable[str] = (),
    roots: Iterable[Path] | None = None,
    on_error: OnError | None = None,
) -> Iterator[Event]:
    """Every source checked first (BadInput naming the first bad one), then their events
    merged in event time."""
    roots = None if roots is None else list(roots)
    sources = [parse_source(t, roots) for t in texts]
    if not sources:
        raise BadInput("no source: name at least one KIND:PATH")
    symbols = list(symbols)
    return merged(open_source(s, symbols, on_error) for s in sources)
