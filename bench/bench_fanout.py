"""Fanout benchmark: delivered updates/s and per-update latency to many WebSocket clients.

    .venv/bin/python -m bench.bench_fanout [--seconds 5] [--workers 1,2] [--only N] [--quick]

Both servers run as ``--workers`` processes sharing one port with SO_REUSEPORT, like
``hub fanout --workers N`` (bench.fanout_servers): each worker has its own copy of the
deterministic synthetic feed (``--symbols`` streams at a fixed total rate, each event's
``ts_recv`` the time it was due on that schedule; the same seed, start instant and event
count in every worker: the stand-in for each worker being a Kafka consumer of the same
streams) into, in turn,

* the hub's ``FanoutNode`` (shared frames per flush interval, embedded mode), and
* the baseline: a naive websockets server sending one frame per update to every
  subscriber, with the same work bound as the hub (a fixed count of events; a connection
  whose unsent bytes pass the hub's send buffer bound is dropped as slow; a feed
  ``FEED_GRACE_S`` behind its schedule stops, and the notes say how much it sent).

The clients run in separate processes (bench.fanout_clients), each connection subscribed
to the book and trades of one symbol (round robin). Latency is per update: every update
message's own ``ts_recv`` against the time its bytes were read (a server that falls behind
its feed's schedule shows it: no coordinated omission), never one sample per read
(the newest stamp of a read hides the backlog in front of it). About 1 % of the
connections (at least one per symbol) keep a real book from every message (seq ranges
continuous, checksums verified) and end with the feed's final book, or the table says
how many did not ("books exact"). Figures are over ``--seconds`` after a warm-up.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from app.workers import reserve_port
from bench.fanout_clients import BUCKET_NS, client_process
from bench.fanout_servers import (
    FEED_GRACE_S,
    SyntheticFeed,
    raise_fd_limit,
    server_process,
    synced_node,
)
from bench.machine import facts

__all__ = ["SyntheticFeed", "main", "synced_node"]

WARMUP_S = 1.5
CLIENTS_PER_PROCESS = 2500
STEP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Scenario:
    name: str
    clients: int
    rate: int
    """Feed events/s (all symbols)."""
    flush_ms: int
    runs: int = 1
    goal: str = ""
    """"" | "throughput" | "p99 <= X ms" | "books" (every verified book exact)."""


SCENARIOS = (
    Scenario("full rate", 100, 6000, 5),
    Scenario("full rate", 1000, 6000, 5, goal="throughput"),
    Scenario("fixed rate", 100, 1000, 1, goal="p99 <= 2 ms"),
    Scenario("fixed rate", 1000, 400, 2, runs=5, goal="p99 <= 10 ms"),
    Scenario("10,000 connected", 10_000, 40, 5, goal="books"),
)
QUICK = (Scenario("quick", 20, 400, 2, goal="books"),)


def params(sc: Scenario, args: argparse.Namespace) -> dict[str, Any]:
    warmup = WARMUP_S if sc.clients < 5000 else 2 * WARMUP_S  # the connection storm's wake
    feed_s = warmup + args.seconds + 0.3
    verifiers = min(sc.clients, max(2, sc.clients // 100))
    return {
        "symbols": args.symbols,
        "rate": sc.rate,
        "flush_ms": sc.flush_ms,
        "clients": sc.clients,
        "warmup_s": warmup,
        "seconds": args.seconds,
        "feed_s": feed_s,
        "total": int(sc.rate * feed_s),
        "verify_every": max(1, sc.clients // verifiers),
    }


def _recv(pipe: Any, proc: Any, what: str) -> Any:
    if not pipe.poll(STEP_TIMEOUT_S):
        raise RuntimeError(f"{proc.name}: no {what} within {STEP_TIMEOUT_S:g} s")
    return pipe.recv()


def run_one(kind: str, sc: Scenario, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One scenario against ``workers`` processes of one server kind ("hub", "baseline")."""
    ctx = mp.get_context("spawn")
    p = params(sc, args)
    reserved = reserve_port("127.0.0.1", 0)
    port = reserved.getsockname()[1]
    procs: list[Any] = []
    took: dict[str, float] = {}
    began = time.monotonic()
    try:
        servers = []
        for i in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=server_process, args=(kind, port, p, child), name=f"w{i}")
            proc.start()
            procs.append(proc)
            servers.append((proc, parent))
        for proc, pipe in servers:
            assert _recv(pipe, proc, "ready") == "ready"
        per = -(-sc.clients // (args.client_procs or -(-sc.clients // CLIENTS_PER_PROCESS)))
        clients = []
        for lo in range(0, sc.clients, per):
            parent, child = ctx.Pipe()
            ids = range(lo, min(sc.clients, lo + per))
            proc = ctx.Process(target=client_process, args=(port, ids, p, child), name=f"c{lo}")
            proc.start()
            procs.append(proc)
            clients.append((proc, parent))
        ready = time.monotonic()
        connected = sum(_recv(pipe, proc, "connect")[1] for proc, pipe in clients)
        took["connect"] = time.monotonic() - ready
        start_at = time.time() + 0.3
        for _, pipe in (*servers, *clients):
            pipe.send(start_at)
        fed = [_recv(pipe, proc, "results") for proc, pipe in servers]
        for _, pipe in clients:
            pipe.send("fed")
        done = [_recv(pipe, proc, "results") for proc, pipe in clients]
        for _, pipe in servers:
            pipe.send("stop")
        for proc in procs:
            proc.join(15)
        took["run"] = time.monotonic() - began
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        reserved.close()
    return {**merge(done, fed, connected, p), "took": took}


def merge(
    done: list[dict[str, Any]], fed: list[dict[str, Any]], connected: int, p: dict[str, Any]
) -> dict[str, Any]:
    """The client processes' figures as one, and the verified books against the feed's."""
    # Every worker's copy of the feed ends on the same books unless one was cut short
    # (its work bound): a verified book must equal the final book of one of them.
    ends = [(f["books"], f["seq"], f["trade_seq"]) for f in fed]
    hist: Counter[int] = Counter()
    for d in done:
        hist.update(d["hist"])
    books = [b for d in done for b in d["books"]]
    exact, problems = 0, []
    for symbol, got in books:
        if got["error"]:
            problems.append(got["error"])
            continue
        seqs = {seq[symbol] for _, seq, _ in ends}
        if got["seq"] not in seqs:
            problems.append(f"{symbol} behind: seq {got['seq']}, feed at {sorted(seqs)}")
        elif not any(
            (got["bids"], got["asks"]) == b[symbol] and got["seq"] == seq[symbol]
            for b, seq, _ in ends
        ):
            problems.append(f"{symbol} book differs at seq {got['seq']}")
        elif got["trade_gaps"] or got["trade_seq"] not in {t[symbol] for _, _, t in ends}:
            problems.append(f"{symbol} trades: {got['trade_gaps']} gaps, last {got['trade_seq']}")
        else:
            exact += 1
    return {
        "updates_per_s": sum(d["updates"] / d["elapsed"] for d in done),
        "bytes_per_s": sum(d["bytes"] / d["elapsed"] for d in done),
        "frames_per_s": sum(f["frames_per_s"] for f in fed),
        "server_cpu": sum(f["cpu"] for f in fed),
        "client_cpu": sum(d["cpu"] for d in done),
        "hist": hist,
        "connected": connected,
        "closed": sum(d["closed"] for d in done),
        "dropped": sum(f["dropped"] for f in fed),
        "verified": len(books),
        "exact": exact,
        "checksums": sum(got["checksums"] for _, got in books),
        "problems": problems,
        "events": min(f["events"] for f in fed),
        "offered": p["total"] + p["symbols"] * 20,
    }


def pct(hist: Counter[int], q: float) -> float:
    """The q-quantile of a latency histogram, in ms (the bucket's upper edge)."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank, seen = q * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) * BUCKET_NS / 1e6
    return (max(hist) + 1) * BUCKET_NS / 1e6


def verdict(goal: str, r: dict[str, Any], base: dict[str, Any]) -> str:
    if goal.startswith("p99"):
        bound, p99 = float(goal.split()[2]), pct(r["hist"], 0.99)
        return f"{goal}: met" if p99 <= bound else f"{goal}: not met, floor here {p99:.1f} ms"
    if goal == "throughput":
        got, ratio = r["updates_per_s"], r["updates_per_s"] / base["updates_per_s"]
        text = ">= 1 M delivered updates/s and >= 5x the baseline"
        ok = got >= 1e6 and ratio >= 5
        return f"{text}: {'met' if ok else f'not met, floor here {got / 1e6:.2f} M, {ratio:.1f}x'}"
    if goal == "books":
        ok = r["connected"] >= 0.999 * r["clients"] and r["exact"] == r["verified"] > 0
        return f"all connected, every verified book exact: {'met' if ok else 'not met'}"
    return ""


HEADER = (
    "| scenario | clients connected | workers | feed events/s (per client) | flush | server "
    "| delivered updates/s | frames/s | MB/s | p50 ms | p99 ms | p99.9 ms | closed "
    "| server, client CPU | books exact | vs baseline | goal |"
)


def row(sc: Scenario, label: str, workers: int, name: str, r: dict[str, Any], goal: str) -> str:
    books = f"{r['exact']}/{r['verified']}"
    if r["checksums"]:
        books += f" ({r['checksums']:,} checksums)"
    h = r["hist"]
    return (
        f"| {label} | {r['connected']:,} | {workers} | {sc.rate:,} "
        f"({sc.rate // r['symbols']:,}) | {sc.flush_ms} ms | {name} | "
        f"{r['updates_per_s']:,.0f} | {r['frames_per_s']:,.0f} | {r['bytes_per_s'] / 1e6:.1f} | "
        f"{pct(h, 0.5):.2f} | {pct(h, 0.99):.2f} | {pct(h, 0.999):.2f} | {r['closed']:,} | "
        f"{r['server_cpu']:.0%}, {r['client_cpu']:.0%} | {books} | {r.get('ratio', '')} | {goal} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--symbols", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", default="1", help="server processes, e.g. 2 or 1,2")
    ap.add_argument("--client-procs", type=int, default=0, help="0: one per 2,500 clients")
    ap.add_argument("--quick", action="store_true", help="one small scenario (for the tests)")
    ap.add_argument("--only", type=int, help="run only scenario N (0-based)")
    ap.add_argument("--runs", type=int, help="override a scenario's runs")
    ap.add_argument("--rate", type=int, help="override the feed rate (events/s)")
    ap.add_argument("--flush-ms", type=int, dest="flush", help="override the flush interval")
    args = ap.parse_args()
    raise_fd_limit()
    print(facts())
    print(
        f"{args.symbols} symbols, 10% of events trades; each client: book + trades of one "
        "symbol; clients in separate processes; latency per update (each one's own ts_recv)"
    )
    scenarios: tuple[Scenario, ...] = QUICK if args.quick else SCENARIOS
    if args.only is not None:
        scenarios = (scenarios[args.only],)
    for key, value in (("flush_ms", args.flush), ("rate", args.rate), ("runs", args.runs)):
        if value:
            scenarios = tuple(Scenario(**{**vars(s), key: value}) for s in scenarios)
    print()
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    notes = []
    for workers in (int(w) for w in args.workers.split(",")):
        for sc in scenarios:
            p99s = []
            for run in range(sc.runs):
                label = sc.name if sc.runs == 1 else f"{sc.name}, run {run + 1}/{sc.runs}"
                base = run_one("baseline", sc, workers, args)
                hub = run_one("hub", sc, workers, args)
                for kind, r in (("baseline", base), ("hub", hub)):
                    r["symbols"], r["clients"] = args.symbols, sc.clients
                    if sc.clients >= 5000:
                        notes.append(
                            f"{label}, {kind}: {r['connected']:,} connected in "
                            f"{r['took']['connect']:.0f} s, whole run {r['took']['run']:.0f} s"
                        )
                    notes += [f"{label}: {x}" for x in r["problems"][:3]]
                hub["ratio"] = f"{hub['updates_per_s'] / base['updates_per_s']:.1f}x"
                print(row(sc, label, workers, "baseline: a frame per update", base, ""))
                goal = verdict(sc.goal, hub, base)
                print(row(sc, label, workers, "hub FanoutNode", hub, goal), flush=True)
                p99s.append(pct(hub["hist"], 0.99))
                if hub["events"] != hub["offered"]:
                    notes.append(
                        f"{label}: the hub's feed was cut at its work bound (its schedule "
                        f"+ {FEED_GRACE_S:g} s): {hub['events']:,} of {hub['offered']:,} events"
                    )
                if base["events"] != base["offered"]:
                    notes.append(
                        f"{label}: the baseline's feed was cut at its work bound (its schedule "
                        f"+ {FEED_GRACE_S:g} s): {base['events']:,} of {base['offered']:,} events"
                    )
            if sc.runs > 1:
                notes.append(
                    f"{sc.name}, {sc.clients:,} clients, {workers} worker(s): hub p99 per run "
                    + ", ".join(f"{v:.1f}" for v in p99s)
                    + f" ms (worst {max(p99s):.1f})"
                )
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
