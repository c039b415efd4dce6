"""Bodies of the file commands of the ``hub`` CLI: ``hub sample``, ``hub replay itch``
(``app/cli.py`` declares their flags)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fanout.replay import Opener
    from hub.config import FanoutConfig
    from hub.events import Event

MAX_REPLAYS = 1000
ITCH_SCAN_BYTES = 64 * 2**20
"""An ITCH file /replay may list the stocks of itself (a scan before the first message)."""


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
    from feedhandler.files.sources import in_range, open_sources

    kinds = parse_channels(channels)
    start_ns, end_ns = parse_time("--from", start), parse_time("--to", end)
    events = in_range(open_sources(sources, symbols), start_ns, end_ns)
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


def replay_opener(cfg: FanoutConfig) -> Opener | None:
    """What a node's /replay opens sources with: files inside ``fanout.replay_dirs`` (None:
    no folders, the endpoint refuses); ConfigError for a folder that is not one, or a
    ``max_replays`` out of range."""
    from feedhandler.files.sources import open_sources, parse_source
    from hub.errors import BadInput, ConfigError

    if not 1 <= cfg.max_replays <= MAX_REPLAYS:
        raise ConfigError(f"fanout.max_replays must be 1 to {MAX_REPLAYS}, got {cfg.max_replays}")
    if not cfg.replay_dirs:
        return None
    roots = [Path(d) for d in cfg.replay_dirs]
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"fanout.replay_dirs: {root} is not a folder")

    def opener(sources: list[str], symbols: list[str]) -> Iterator[Event]:
        for text in sources:
            source = parse_source(text, roots)
            if source.kind == "itch" and not symbols:
                size = source.path.stat().st_size
                if size > ITCH_SCAN_BYTES:  # listing its stocks reads all of it, at once
                    raise BadInput(
                        f"source {text}: {size // 2**20} MiB of ITCH; name the stocks to "
                        "replay (symbols)"
                    )
        return open_sources(sources, symbols, roots)

    return opener
