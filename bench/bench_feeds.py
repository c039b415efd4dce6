"""Feed benchmark: venue frames per CPU-second, ours beside cryptofeed's, on the real captures.

    .venv/bin/python -m bench.bench_feeds [--repeat 5] [--quick]

Every capture in ../shared/data/captures whose venue has a parser is read into
memory once, then played through our parser + sync engine + books (orjson,
the compiled core; checksums verified where the venue sends them) and, for the
captures whose feed cryptofeed handles (bench/peer_cryptofeed.py), through
cryptofeed's own exchange handlers the way its sample-data playback feeds them.
The two alternate, ``--repeat`` samples each, in this one process; a sample is
the CPU time (``time.process_time``) of playing every frame and REST snapshot
of the capture, repeated until it lasts 0.1 s. The instrument metadata (symbol
lists and precisions: Binance's exchangeInfo of 1,700 symbols, Coinbase's
products) is read before the clock starts on both sides, as cryptofeed reads it
when its feed is built. Figures are medians; the ratio is ours over the peer's,
against the goal of 3x.

After playing, every book must equal cryptofeed's (every level, as decimals;
where cryptofeed is known to be wrong or to keep what ours rounds, its book is
first brought alike or only its levels are checked, and a footnote says why),
and ours must end with no malformed frame and no failed checksum; the bench
stops on any difference. A capture cryptofeed cannot read has its row with our
figure and the reason (``peer_cryptofeed.NO_PEER``). ``--quick`` plays the
peer's captures once each.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench import peer_cryptofeed as cf
from bench.machine import facts
from feedhandler.files.capture import CaptureError, CaptureLine, read_capture, read_header
from feedhandler.files.replay import venue_of
from feedhandler.venues import VENUES
from feedhandler.venues.base import ParserBase

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = Path(os.environ.get("HUB_SHARED_DIR", ROOT.parent / "shared")) / "data" / "captures"
GOAL = 3.0
SAMPLE_S = 0.1
"""A sample repeats the whole capture until it has used this much CPU time."""


def play_ours(parser: ParserBase, lines: list[CaptureLine]) -> ParserBase:
    """Feed ``parser`` every line as the replay feeds it (sends, REST answers, frames)."""
    for line in lines:
        if line.kind == "recv":
            parser.on_frame(line.raw or line.data, line.ts_ns)
        elif line.kind == "http":
            parser.on_http(line.url, line.data, line.ts_ns)
        elif line.kind == "send":
            parser.on_sent(line.data)
    return parser


def setup_lines(venue: str, lines: list[CaptureLine]) -> list[CaptureLine]:
    """The REST answers with instrument metadata (symbol lists, precisions): read before
    the clock starts, on both sides (cryptofeed reads them when its feed is built)."""
    paths = {urlparse(u).path for u in VENUES[venue].parser().instrument_urls("")}
    return [x for x in lines if x.kind == "http" and urlparse(x.url).path in paths]


def our_books(parser: ParserBase) -> dict[str, cf.Book]:
    """Each of our books, every level, as decimals (cryptofeed's books are of Decimal)."""
    out = {}
    for symbol, sync in parser.books.items():
        tick, lot = parser.units_for(symbol)
        bids, asks = sync.book.snapshot()
        out[symbol] = (
            {Decimal(tick.to_str(p)): Decimal(lot.to_str(s)) for p, s in bids},
            {Decimal(tick.to_str(p)): Decimal(lot.to_str(s)) for p, s in asks},
        )
    return out


def healthy(parser: ParserBase) -> tuple[int, str]:
    """Checksums verified, and what is wrong with the replay (empty: nothing)."""
    verified = sum(s.stats.checksums_ok for s in parser.books.values())
    failed = sum(s.stats.checksums_failed for s in parser.books.values())
    problems = []
    if parser.malformed:
        problems.append(f"{parser.malformed} malformed: {list(parser.errors)[:1]}")
    if failed:
        problems.append(f"{failed} checksums failed")
    return verified, "; ".join(problems)


def cpu_rate(prepare: Callable[[], Any], run: Callable[[Any], Any], frames: int, n: int) -> float:
    """Frames per CPU-second of ``run`` (``prepare``, untimed, builds what it runs on),
    over ``n`` runs."""
    spent = 0.0
    for _ in range(n):
        ready = prepare()
        started = time.process_time()
        run(ready)
        spent += time.process_time() - started
    return frames * n / spent


def runs_per_sample(prepare: Callable[[], Any], run: Callable[[Any], Any]) -> int:
    ready = prepare()
    started = time.process_time()
    run(ready)
    return max(1, math.ceil(SAMPLE_S / max(time.process_time() - started, 1e-6)))


def measure(path: Path, repeat: int, peer_missing: str) -> dict[str, Any]:
    venue = venue_of(path)
    name = path.name.split("_")[0]
    lines = [x for x in read_capture(path) if x.kind in ("recv", "http", "send")]
    setup = setup_lines(venue, lines)
    timed = [x for x in lines if x not in setup]
    frames = sum(1 for x in timed if x.kind in ("recv", "http"))
    peer = cf.PEERS.get(name) if not peer_missing else None
    header = read_header(path)
    plain: list[cf.Line] = [(x.kind, x.url, x.raw or x.data, x.ts_ns / 1e9) for x in lines]
    loop = asyncio.new_event_loop()

    def ours() -> ParserBase:
        return play_ours(VENUES[venue].parser(), setup)

    def ours_run(parser: ParserBase) -> ParserBase:
        return play_ours(parser, timed)

    def theirs() -> cf.Playback:
        assert peer is not None
        return cf.Playback(peer, header, plain)

    def theirs_run(playback: cf.Playback) -> cf.Playback:
        loop.run_until_complete(playback.play(plain))
        return playback

    n_ours = runs_per_sample(ours, ours_run) if repeat > 1 else 1
    n_peer = runs_per_sample(theirs, theirs_run) if peer and repeat > 1 else 1
    ours_rates, peer_rates = [], []
    for _ in range(repeat):
        ours_rates.append(cpu_rate(ours, ours_run, frames, n_ours))
        if peer is not None:
            peer_rates.append(cpu_rate(theirs, theirs_run, frames, n_peer))
    parser = ours_run(ours())
    verified, problems = healthy(parser)
    assert not problems, f"{path.name}: {problems}"
    result: dict[str, Any] = {
        "name": name,
        "frames": frames,
        "ours": statistics.median(ours_rates),
        "checksums": verified,
    }
    if peer is not None:
        books = theirs_run(theirs()).books()
        result["peer"] = statistics.median(peer_rates)
        result["books"] = compare(path.name, peer, our_books(parser), books)
    loop.close()
    return result


def compare(name: str, peer: cf.Peer, ours: dict[str, cf.Book], theirs: dict[str, cf.Book]) -> str:
    """Check every book cryptofeed ended with against ours (sides it is known to get wrong:
    each level it has must be ours); say what was compared."""
    assert set(theirs) <= set(ours), f"{name}: cryptofeed has books we lack"
    for symbol, (bids, asks) in theirs.items():
        assert ours[symbol][0] == bids, f"{name}: {symbol} bids differ from cryptofeed's"
        if peer.wrong_asks:
            assert asks.items() <= ours[symbol][1].items(), f"{name}: {symbol} asks differ"
        else:
            assert ours[symbol][1] == asks, f"{name}: {symbol} asks differ from cryptofeed's"
    if peer.wrong_asks:
        return f"all {len(theirs)} bid sides; asks: each of cryptofeed's levels is ours (*)"
    return f"all {len(theirs)}" + (" (*)" if peer.correction else "")


def simulator_rate(steps: int) -> float:
    from hub.events import BookUpdate
    from trading.simulator import SimulatedExchange

    x = SimulatedExchange("SIM", "BTC-USD", 1)
    started, n = time.perf_counter(), 0
    for i in range(steps):
        n += sum(isinstance(e, BookUpdate) for e in x.step(i))
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the peer's captures, once each")
    parser.add_argument("--only", default="", help="captures whose name starts with this")
    args = parser.parse_args()
    missing = cf.available()
    paths, unsupported = [], []
    for path in sorted(CAPTURES.glob("*.jsonl*")):
        try:
            venue_of(path)
        except CaptureError:
            unsupported.append(path.name.split("_")[0])
            continue
        name = path.name.split("_")[0]
        if name.startswith(args.only) and (not args.quick or name in cf.PEERS):
            paths.append(path)
    repeat = 1 if args.quick else args.repeat
    rows = [measure(path, repeat, missing) for path in paths]
    print(facts())
    print(f"peer: {missing or 'cryptofeed ' + _version()}; goal >= {GOAL:g}x the peer's")
    print()
    print(
        "| capture | frames | ours frames/CPU-s | cryptofeed frames/CPU-s | ours / peer "
        f"(goal >= {GOAL:g}x) | books equal (or why no peer) | checksums verified (ours) |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    for r in rows:
        if "peer" in r:
            ratio = r["ours"] / r["peer"]
            verdict = "met" if ratio >= GOAL else "NOT met"
            peer = (f"{r['peer'] / 1e3:,.1f}k", f"{ratio:.2f}x {verdict}", r["books"])
        else:
            peer = ("no peer", "", cf.NO_PEER.get(r["name"], "no parser of ours to compare"))
        cells = (r["name"], f"{r['frames']:,}", f"{r['ours'] / 1e3:,.1f}k", *peer)
        print("| " + " | ".join((*cells, f"{r['checksums']:,}")) + " |")
    if unsupported:
        print(f"| no parser yet: {', '.join(unsupported)} | | | | | | |")
    for name in sorted({r["name"] for r in rows if "(*)" in r.get("books", "")}):
        known = cf.PEERS[name]
        print(f"\n(*) {name}: cryptofeed {known.wrong_asks or known.correction}.")
    rate = simulator_rate(10_000 if args.quick else 100_000)
    verdict = "met" if rate >= 100_000 else "NOT met"
    print(f"\nsimulated exchange: {rate / 1e3:,.0f}k book events/s (target >= 100k: {verdict})")


def _version() -> str:
    from importlib.metadata import version

    return version("cryptofeed")


if __name__ == "__main__":
    main()
