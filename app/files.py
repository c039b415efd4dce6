"""Bodies of the file commands of the ``hub`` CLI: ``hub sample``, ``hub replay itch``
(``app/cli.py`` declares their flags)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hub.events import Event


def itch_summary(path: Path, symbols: list[str] | None = None) -> dict[str, Any]:
    """What ``hub replay itch`` prints: messages per type, and per stock its trading state,
    executions, resting orders and top five levels (prices in 1/10000 dollars)."""
    from feedhandler.files.itch import replay_itch

    replay = replay_itch(path, symbols)
    stocks: dict[str, Any] = {}
    for symbol in sorted(replay.symbols()):
        book = replay.book(symbol)
        bids, asks = book.snapshot(5)
        count, shares = replay.executions(symbol)
        stocks[symbol] = {
            "state": replay.trading_state(symbol),
            "executions": count,
            "executed_shares": shares,
            "orders": book.order_count(),
            "bids": [list(b) for b in bids],
            "asks": [list(a) for a in asks],
        }
    return {
        "venue": "ITCH",
        "messages": replay.messages,
        "types": dict(sorted(replay.counts().items())),
        "symbols": stocks,
    }


def replay_itch_command(path: Path, symbol: str | None) -> int:
    print(json.dumps(itch_summary(path, [symbol] if symbol else None), indent=2))
    return 0


def sample_command(folder: Path, seed: int) -> int:
    """Write the sample files; print each with the command that replays it."""
    from feedhandler.files.sample import write_samples

    samples = write_samples(folder, seed)
    for s in samples:
        size = sum(f.stat().st_size for f in s.files)
        print(f"{s.kind}: {s.about} ({size // 1024} KiB)")
        for f in s.files:
            print(f"  wrote {f}")
        print(f"  replay: {s.shell()}")
    return 0


def parse_time(flag: str, text: str | None) -> int | None:
    """``--from``/``--to``: epoch nanoseconds, or an ISO 8601 UTC time
    (``2019-12-30T14:30:00.5Z``); BadInput naming the flag otherwise."""
    from hub.errors import BadInput
    from hub.times import iso_ns_exact

    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        return iso_ns_exact(text)
    except ValueError:
        raise BadInput(
            f"{flag} {text!r} is neither epoch nanoseconds nor an ISO 8601 UTC time"
        ) from None


def export_format(form: str | None, out: Path) -> str:
    """The format asked for, else the one ``out``'s suffix names, else NDJSON."""
    if form is not None:
        return form
    return {".csv": "csv", ".parquet": "parquet"}.get(out.suffix, "ndjson")


SOURCE_KINDS = ("capture", "itch", "lobster", "databento")


def open_sources(
    texts: list[str], start_ns: int | None, end_ns: int | None, symbols: list[str]
) -> Iterator[Event]:
    """INTERIM, until ``feedhandler.files.sources`` (the replay endpoint's sources layer:
    ``parse_source``, ``open_source``, ``merged``) lands: ``KIND:PATH`` sources opened with
    the replay functions ``hub feed`` uses, their events in ``[start_ns, end_ns]`` (a
    stream's instrument first), merged by event time. Replace this one function by that
    layer when merging."""
    import heapq

    from app.launch import instrument_from
    from bus.output import InstrumentFor
    from feedhandler.files.databento import databento_batches
    from feedhandler.files.export import event_time
    from feedhandler.files.itch import itch_batches, replay_itch
    from feedhandler.files.lobster import lobster_batches
    from feedhandler.files.pacing import Batch, log_bad_record
    from feedhandler.files.replay import capture_batches, venue_of
    from feedhandler.venues import VENUES
    from hub.errors import BadInput
    from hub.events import Instrument

    def one(text: str) -> Iterator[Event]:
        """Check the source now (BadInput naming it); its events when iterated."""
        kind, _, name = text.partition(":")
        path = Path(name)
        if kind not in SOURCE_KINDS or not name:
            raise BadInput(f"source {text!r}: write KIND:PATH, KIND one of {SOURCE_KINDS}")
        try:
            path.open("rb").close()
        except OSError as exc:
            raise BadInput(f"source {text}: {exc.strerror or exc}") from exc
        on_error = log_bad_record(path)
        instrument_for = None
        batches: Iterator[Batch]
        if kind == "capture":
            venue = venue_of(path)
            if venue not in VENUES:
                raise BadInput(f"source {text}: venue {venue!r} has no replay parser")
            parser = VENUES[venue].parser()
            instrument_for = instrument_from(parser)
            batches = capture_batches(path, parser, on_error)
        elif kind == "lobster":
            batches = lobster_batches(path, path.name.split("_", 1)[0], on_error)
        elif kind == "databento":
            batches = databento_batches(path, on_error)
        else:  # every stock the file lists, unless --symbol names them
            stocks = [x.upper() for x in symbols] or replay_itch(path).symbols()
            batches = itch_batches(path, stocks, on_error)
        return events(batches, instrument_for)

    def events(batches: Iterator[Batch], instrument_for: InstrumentFor | None) -> Iterator[Event]:
        seen: set[tuple[str, str]] = set()
        for _ts, batch in batches:
            for e in batch:
                if isinstance(e, Instrument):
                    seen.add((e.venue, e.symbol))
                    yield e
                    continue
                key = (e.venue, e.symbol)
                if key not in seen and instrument_for is not None:
                    found = instrument_for(*key)
                    if found is not None:
                        seen.add(key)
                        yield found
                at = event_time(e)
                if (start_ns is None or at >= start_ns) and (end_ns is None or at <= end_ns):
                    yield e

    streams = [one(text) for text in texts]  # every source checked before any row
    return heapq.merge(*streams, key=event_time)


def export_command(
    sources: list[str],
    start: str | None,
    end: str | None,
    form: str | None,
    out: Path,
    symbols: list[str],
    channels: str,
) -> int:
    """``hub export``: the sources' events, merged in time order, as rows in ``out``."""
    import sys

    from feedhandler.files.export import Rows, parse_channels, write_rows

    kinds = parse_channels(channels)
    start_ns, end_ns = parse_time("--from", start), parse_time("--to", end)
    events = open_sources(sources, start_ns, end_ns, symbols)
    rows = Rows(kinds, symbols)
    form = export_format(form, out)
    try:
        write_rows(rows.all(events), form, out)
    except BrokenPipeError:  # stdout's reader stopped early (``| head``): not a failure
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(f"hub export: {rows.events} events, {rows.rows} {form} rows to {out}", file=sys.stderr)
    return 0
