"""The ``hub`` command: one entry point for every process and tool of the hub."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import faulthandler
import logging
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from app.shutdown import StopRequested, run_service, stop_early
from hub.config import FEED_SOURCES, LIVE_SOURCES, HubConfig, load_config
from hub.errors import BadInput, ConfigError, HubError, ServiceUnavailable
from hub.logs import setup_logging

ROOT = Path(__file__).resolve().parent.parent
SERVICES_NEED_CHECKOUT = (
    "hub: error: `hub services` runs the checkout's scripts/services.sh and this hub is "
    "installed without one: run it from a checkout (scripts/install.sh sets one up), or "
    "point HUB_KAFKA__BOOTSTRAP, HUB_REDIS__URL and HUB_POSTGRES__DSN at your services"
)
Runner = Callable[[HubConfig], Coroutine[Any, Any, None]]


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Map command-line flags onto config sections."""
    flags = {
        "kafka": ("kafka", "bootstrap"),
        "topic_prefix": ("kafka", "topic_prefix"),
        "redis": ("redis", "url"),
        "postgres": ("postgres", "dsn"),
        "symbols": ("feed", "symbols"),
        "seed": ("feed", "seed"),
        "rate": ("feed", "rate"),
        "max_orders": ("feed", "max_orders"),
        "source": ("feed", "source"),
        "file": ("feed", "file"),
        "speed": ("feed", "speed"),
        "url": ("feed", "url"),
        "rest_url": ("feed", "rest_url"),
        "host": ("fanout", "host"),
        "port": ("fanout", "port"),
        "database": ("fanout", "database"),
        "workers": ("fanout", "workers"),
        "group": ("recorder", "group"),
        "orders": ("orders", "enabled"),
        "orders_port": ("orders", "port"),
        "journal": ("orders", "journal"),
        "orders_log": ("orders", "log"),
        "accounts": ("orders", "accounts"),
    }
    out: dict[str, Any] = {}
    for flag, (section, key) in flags.items():
        value = getattr(args, flag, None)
        if value is not None:
            out.setdefault(section, {})[key] = value
    metrics_port = getattr(args, "metrics_port", None)
    if metrics_port is not None:
        section = args.command if args.command in ("recorder", "consolidate") else "feed"
        out.setdefault(section, {})["metrics_port"] = metrics_port
    if args.log_level is not None:
        out["log_level"] = args.log_level
    return out


def _add_service_flags(p: argparse.ArgumentParser, *names: str) -> None:
    helps = {
        "kafka": "Kafka bootstrap host:port",
        "redis": "Redis URL",
        "postgres": "PostgreSQL DSN",
        "topic_prefix": "prefix of the hub's Kafka topics",
    }
    for name in names:
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=helps[name])


def _symbols(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def _add_feed_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--source",
        choices=FEED_SOURCES,
        help="where books come from (default sim: the simulated exchange)",
    )
    p.add_argument("--file", help="file a replay source reads")
    p.add_argument("--speed", help="replay pace: max, or a multiple of real time (1 = as recorded)")
    p.add_argument("--url", help="WebSocket endpoint of a live venue (default: the venue's)")
    p.add_argument("--rest-url", dest="rest_url", help="REST base URL of a live venue")
    p.add_argument(
        "--symbols",
        type=_symbols,
        help="comma-separated symbols (simulated exchange, live venue or ITCH stocks)",
    )
    p.add_argument("--seed", type=int, help="seed of the simulated order flow")
    p.add_argument("--rate", type=float, help="orders per second per symbol (0 = unpaced)")
    p.add_argument("--max-orders", type=int, help="stop generating after N orders per symbol")
    p.add_argument(
        "--orders",
        action="store_const",
        const=True,
        help="run the order path: order entry, risk and matching on the simulated venue",
    )
    p.add_argument("--orders-port", type=int, help="port of the order-entry WebSocket (8770)")
    p.add_argument("--journal", help="the order path's journal file (var/orders.journal)")
    p.add_argument(
        "--orders-log",
        choices=("file", "kafka"),
        help="the order path's log: the journal file, or a Kafka topic (hub feed)",
    )
    p.add_argument("--accounts", help="TOML file of trader accounts and limits")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub", description="Real-time market-data hub: feeds, book core, fanout, recorder."
    )
    parser.add_argument("--config", type=Path, help="TOML config file (default: $HUB_CONFIG)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo", help="all-in-one hub: simulator, book core, fanout and web page; no services"
    )
    _add_feed_flags(p)
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port of the page and WebSocket API (default 8765)")
    p.add_argument(
        "--workers",
        type=int,
        help="fanout node processes sharing the port (SO_REUSEPORT), fed by this process's "
        "relay; 0: one per core (default 1: the node runs in this process)",
    )

    p = sub.add_parser(
        "feed", help="a feed (simulator, live venue or replay) publishing to Kafka, Redis"
    )
    _add_feed_flags(p)
    _add_service_flags(p, "kafka", "redis", "topic_prefix")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz")

    p = sub.add_parser("fanout", help="WebSocket fanout node consuming Kafka")
    _add_service_flags(p, "kafka", "redis", "postgres", "topic_prefix")
    p.add_argument("--host", help="address to bind")
    p.add_argument("--port", type=int, help="port of the WebSocket API, page, REST and /metrics")
    p.add_argument(
        "--database",
        action="store_const",
        const=True,
        help="answer REST candle history from the recorder's TimescaleDB (--postgres)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="node processes sharing the port (SO_REUSEPORT); 0: one per core (default 1)",
    )

    p = sub.add_parser(
        "consolidate", help="consolidated books across venues, from Kafka back to Kafka"
    )
    _add_service_flags(p, "kafka", "redis", "topic_prefix")
    p.add_argument(
        "--symbol",
        action="append",
        default=[],
        help="a canonical id to consolidate (repeat; default: every one)",
    )
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz")

    p = sub.add_parser("recorder", help="write trades from Kafka into TimescaleDB")
    _add_service_flags(p, "kafka", "postgres", "topic_prefix")
    p.add_argument("--group", help="Kafka consumer group")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /healthz")

    p = sub.add_parser("db", help="database tools")
    p.add_argument(
        "action",
        choices=["create", "migrate", "version"],
        help="create: the database the DSN names (if absent); migrate: apply pending "
        "migrations; version: print the schema version",
    )
    _add_service_flags(p, "postgres")

    p = sub.add_parser("services", help="start/stop the local Kafka, PostgreSQL and Redis")
    p.add_argument("action", choices=["up", "down", "status", "env"])
    p.add_argument(
        "service",
        nargs="?",
        choices=["kafka", "postgres", "redis"],
        help="only this service (default: all)",
    )

    p = sub.add_parser("itch", help="replay a NASDAQ ITCH 5.0 file and print one symbol's book")
    p.add_argument("file", type=Path, help="ITCH 5.0 file, plain or gzip")
    p.add_argument("--symbol", required=True, help="stock symbol, e.g. AAPL")
    p.add_argument("--after", type=int, default=-1, help="stop after N messages (default: all)")
    p.add_argument("--depth", type=int, default=0, help="levels per side (default: all)")

    p = sub.add_parser(
        "replay", help="replay recorded venue traffic through parser, sync and books"
    )
    p.add_argument("kind", choices=["capture", "lobster", "databento", "itch"])
    p.add_argument(
        "file", type=Path, help="capture (.jsonl[.zst]), LOBSTER message, Databento or ITCH file"
    )
    p.add_argument("--orderbook", type=Path, help="LOBSTER orderbook file to check every row")
    p.add_argument(
        "--symbol", help="LOBSTER symbol (default: from the file name); ITCH: only this stock"
    )
    p.add_argument(
        "--venue", choices=LIVE_SOURCES, help="venue parser (default: from the capture's header)"
    )
    p.add_argument("--speed", default="max", help="max, or a multiple of real time (1 = live pace)")
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if a checksum failed, a gap occurred or a book crossed",
    )

    p = sub.add_parser(
        "sample", help="write small ITCH, LOBSTER and Databento files and how to replay each"
    )
    p.add_argument("dir", type=Path, help="folder to write into (made if absent)")
    p.add_argument("--seed", type=int, default=1, help="seed of the order flow (default 1)")

    p = sub.add_parser(
        "export", help="write a replay's normalised events as NDJSON, CSV or Parquet rows"
    )
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="capture or file, as hub replay")
    p.add_argument("--from", dest="start", help="first event time: epoch ns or ISO 8601 UTC")
    p.add_argument("--to", dest="end", help="last event time: epoch ns or ISO 8601 UTC")
    p.add_argument("--format", choices=["ndjson", "csv", "parquet"], help="default: by --out")
    p.add_argument("--out", type=Path, required=True, help="output file; - for stdout")
    p.add_argument("--symbol", action="append", default=[], help="only this symbol (repeat)")
    p.add_argument("--channels", default="trades,book,bbo,status", help="row kinds to write")

    p = sub.add_parser("capture", help="record a live venue's traffic in the capture format")
    p.add_argument("--venue", required=True, choices=LIVE_SOURCES)
    p.add_argument("--symbols", required=True, type=_symbols, help="as the venue names them")
    p.add_argument("out", type=Path, help="output file, .jsonl or .jsonl.zst")
    p.add_argument("--url", help="WebSocket endpoint (default: the venue's)")
    p.add_argument("--rest-url", dest="rest_url", help="REST base URL (default: the venue's)")
    p.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: Ctrl-C)")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (0: no limit)")

    p = sub.add_parser("subscribe", help="print a live view of a symbol from a fanout node")
    p.add_argument(
        "symbol", help="the venue's symbol or the canonical id, any case: XBT/USD, btc-usd-perp"
    )
    p.add_argument("--venue", help="the venue, where several carry the symbol (e.g. KRAKEN)")
    p.add_argument(
        "--channel",
        action="append",
        choices=["book", "l3", "trades", "bbo", "candles", "status"],
        help="channel to show (repeat; default: book and trades)",
    )
    p.add_argument("--url", default="ws://127.0.0.1:8765/ws", help="fanout node's WebSocket URL")
    p.add_argument("--depth", type=int, default=0, help="book levels per side (default: all)")
    p.add_argument("--interval", type=int, default=60, help="candle interval in seconds")
    p.add_argument("--token", help="API key or signed token (default: $HUB_TOKEN)")
    p.add_argument("--count", type=int, default=0, help="stop after N lines (0: no limit)")
    p.add_argument("--seconds", type=float, default=0, help="stop after S seconds (0: Ctrl-C)")
    p.add_argument(
        "--replay",
        metavar="SOURCES",
        help="replay recorded sources from the node's /replay instead (KIND:NAME,...: capture,"
        " itch, lobster, databento files in its fanout.replay_dirs, or db:VENUE:SYMBOL);"
        " SYMBOL '*' shows every stream",
    )
    p.add_argument("--from", dest="start", help="replay from (ISO 8601 UTC or epoch ns)")
    p.add_argument("--to", dest="end", help="replay to (ISO 8601 UTC or epoch ns)")
    p.add_argument("--speed", default="max", help="replay speed: N times recorded, or max")

    sub.add_parser("config", help="print the effective configuration")
    return parser


def _itch(path: Path, symbol: str, after: int, depth: int) -> int:
    """Print a symbol's book after replaying an ITCH file, as JSON with integer prices."""
    import json

    from feedhandler.files.itch import itch_book

    bids, asks = itch_book(path, symbol, after).snapshot(depth)
    print(json.dumps({"bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}))
    return 0


def _replay(path: Path, venue: str | None, speed: str, check: bool) -> int:
    """Replay a capture and print the per-symbol JSON summary."""
    import json

    from feedhandler.files.replay import check_failures, replay_capture

    summary = replay_capture(path, venue, speed)
    print(json.dumps(summary, indent=2))
    problems = check_failures(summary)
    if check and problems:
        print(f"hub: check failed: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def _replay_databento(path: Path) -> int:
    """Replay a Databento MBO file (CSV or DBN) and print the per-instrument summary."""
    import json

    from feedhandler.files.databento import replay_databento

    print(json.dumps(replay_databento(path).summary(), indent=2))
    return 0


def _replay_lobster(messages: Path, orderbook: Path | None, symbol: str | None, check: bool) -> int:
    """Replay LOBSTER files; with --check, exit 1 on any row the book disagrees with."""
    import json

    from feedhandler.files.lobster import replay_lobster

    replay = replay_lobster(messages, orderbook, symbol)
    print(json.dumps(replay.summary(), indent=2))
    if check and replay.mismatches:
        print(
            f"hub: check failed: {replay.mismatches} orderbook rows differ, first at line "
            f"{replay.first_mismatch}",
            file=sys.stderr,
        )
        return 1
    return 0


BAD_INPUT_EXIT = {"replay": 2, "capture": 2, "export": 2}
"""Exit code of a command whose input cannot be used (1 elsewhere): ``hub replay`` keeps 1
for a failed ``--check``, so a file it cannot read at all is 2, as for ``hub capture``."""


def failed(command: str, exc: HubError) -> int:
    """Print the one-line error of a failed command; its exit code: 2 for a bad setting,
    3 for a service that cannot be reached, ``BAD_INPUT_EXIT`` for bad input, else 1."""
    if isinstance(exc, ConfigError):
        print(f"hub: config error: {exc}", file=sys.stderr)
        return 2
    print(f"hub: error: {exc}", file=sys.stderr)
    if isinstance(exc, ServiceUnavailable):
        return 3
    if isinstance(exc, BadInput):
        return BAD_INPUT_EXIT.get(command, 1)
    return 1


def main(argv: list[str] | None = None) -> int:
    # `kill -USR1 <pid>` prints every thread's stack to stderr: what a stuck process is doing.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # Until a service's event loop takes over SIGTERM, it stops the command cleanly (exit
    # 0) instead of killing it mid-import or mid-configuration.
    signal.signal(signal.SIGTERM, stop_early)
    try:
        return _main(argv)
    except StopRequested:
        return 0


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except HubError as exc:
        return failed(args.command, exc)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger("hub").exception("unexpected failure")
        print(f"hub: error: unexpected failure: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    """Run the command; its failures are HubErrors, which ``failed`` reports."""
    if args.command == "services":
        script = ROOT / "scripts" / "services.sh"
        if not script.is_file():  # an installed wheel: the services live in a checkout
            print(SERVICES_NEED_CHECKOUT, file=sys.stderr)
            return 2
        extra = [args.service] if args.service else []
        return subprocess.call([str(script), args.action, *extra])
    if args.command == "replay" and args.kind == "databento":
        return _replay_databento(args.file)
    if args.command == "replay" and args.kind == "itch":
        from app.files import replay_itch_command

        return replay_itch_command(args.file, args.symbol)
    if args.command == "export":
        from app.files import export_command

        return export_command(
            args.sources, args.start, args.end, args.format, args.out, args.symbol, args.channels
        )
    if args.command == "sample":
        from app.files import sample_command

        return sample_command(args.dir, args.seed)
    if args.command == "replay" and args.kind == "lobster":
        return _replay_lobster(args.file, args.orderbook, args.symbol, args.check)
    if args.command == "replay":
        return _replay(args.file, args.venue, args.speed, args.check)
    if args.command == "itch":
        return _itch(args.file, args.symbol, args.after, args.depth)
    if args.command == "subscribe":
        from client.subscribe import subscribe

        channels = args.channel or ["book", "trades"]
        token = args.token or os.environ.get("HUB_TOKEN")
        if args.replay:
            from client.subscribe import watch_replay

            sources = [x for x in args.replay.split(",") if x]
            return asyncio.run(
                watch_replay(
                    args.url,
                    sources,
                    args.symbol,
                    channels,
                    args.start,
                    args.end,
                    args.speed,
                    token,
                    args.count,
                )
            )
        coro = subscribe(
            args.url,
            args.symbol,
            channels,
            args.depth,
            args.interval,
            token,
            args.count,
            args.seconds,
            venue=args.venue,
        )
        return asyncio.run(coro)
    if args.command == "capture":
        from feedhandler.files.record import capture

        setup_logging("info")
        return capture(
            args.venue, args.symbols, args.out, args.url, args.rest_url, args.duration, args.frames
        )
    cfg = load_config(args.config, os.environ, _overrides(args))
    setup_logging(cfg.log_level)
    if args.command == "config":
        import json

        from hub.config import masked

        print(json.dumps(masked(cfg), indent=2))
        return 0
    if args.command == "db":
        from hub import db

        if args.action == "create":
            made = db.create_database(cfg.postgres.dsn)
            print(f"database {'created' if made else 'exists already'}: {redact(cfg)}")
            return 0
        if args.action == "migrate":
            applied = db.migrate(cfg.postgres.dsn)
            print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
        print(f"schema version {db.current_version(cfg.postgres.dsn)}")
        return 0
    from app import run

    runners: dict[str, Runner] = {
        "demo": run.run_demo,
        "feed": run.run_feed,
        "fanout": run.run_fanout,
        "recorder": run.run_recorder,
        "consolidate": lambda c: run.run_consolidator(c, tuple(args.symbol)),
    }
    command = runners[args.command]
    try:
        run_service(lambda: command(cfg), cfg.shutdown_timeout_s, cfg.gc_full_every_s)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        raise port_in_use(exc, cfg) from None
    return 0


def redact(cfg: HubConfig) -> str:
    from hub.config import mask_secret

    return mask_secret(cfg.postgres.dsn)


_BIND_ADDRESS = re.compile(r"\('?([^',)]*)'?, (\d+)")


def port_in_use(exc: OSError, cfg: HubConfig) -> ConfigError:
    """The one-line error for a port another process holds: host:port and the setting(s)
    that asked for it (``fanout.port``, ``feed.metrics_port``...)."""
    m = _BIND_ADDRESS.search(str(exc))
    host, port = (m.group(1), int(m.group(2))) if m else ("?", -1)
    settings = [
        f"{section.name}.{sub.name}"
        for section in dataclasses.fields(cfg)
        if dataclasses.is_dataclass(value := getattr(cfg, section.name))
        for sub in dataclasses.fields(value)
        if (sub.name == "port" or sub.name.endswith("_port")) and getattr(value, sub.name) == port
    ]
    named = f" ({' or '.join(settings)})" if settings else ""
    return ConfigError(
        f"{host}:{port}{named} is already in use: stop what listens there or choose another port"
    )


if __name__ == "__main__":
    sys.exit(main())
