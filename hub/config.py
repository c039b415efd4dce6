"""Typed, frozen configuration that rejects unknown keys at start-up.

Sources, later ones winning: built-in defaults, a TOML file (``--config``,
or ``$HUB_CONFIG``), environment variables ``HUB_<SECTION>__<KEY>`` (e.g.
``HUB_KAFKA__BOOTSTRAP``) and ``HUB_<KEY>`` for the top-level settings
(``HUB_LOG_LEVEL``), then command-line flags. Other ``HUB_*`` variables
(``HUB_TOKEN``, the scripts' and tests' own) are not settings and are ignored.
Every setting below has its default and meaning documented in place;
docs/configuration.md lists them.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from hub.errors import ConfigError
from hub.tomlfile import load_toml


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = "127.0.0.1:39092"
    """host:port list of the Kafka brokers."""
    topic_prefix: str = "md"
    """Topics are <prefix>.book, .trades, .instruments, .bbo and .depth."""
    partitions: int = 8
    """Partitions of topics the hub creates (keyed by symbol)."""
    idempotent: bool = False
    """Idempotent producer; on with real Kafka (docker-compose), off for Tansu which rejects it."""
    acks: str = "all"
    """Producer acks: all, 1 or 0."""
    linger_ms: int = 2
    """Producer batching delay."""
    publish_timeout_ms: int = 2000
    """How long a publish waits for the broker's acknowledgement before the broker counts
    as unreachable: the batch goes back into the publish buffer and the producer is
    re-created."""
    buffer_bytes: int = 64 * 1024 * 1024
    """Bound of the publish buffer that holds events while the broker is unreachable (the
    memory they hold: key, encoded value and ~96 bytes of overhead each; ~215,000 simulator
    events at the default); when it is full, newer events are dropped and counted, and
    consumers resync those streams from the snapshot store when their next event shows the
    gap."""
    retry_first_ms: int = 100
    """First delay between reconnection attempts to an unreachable broker (doubling)."""
    retry_max_ms: int = 2000
    """Longest delay between reconnection attempts."""


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:36379/0"
    """Redis holding the latest snapshot of each book."""
    key_prefix: str = "md"
    """Snapshot keys are <prefix>:book:<venue>:<symbol>."""


@dataclass(frozen=True)
class PostgresConfig:
    dsn: str = "postgresql://postgres@127.0.0.1:35432/hub"
    """PostgreSQL+TimescaleDB; keep passwords in the environment (HUB_POSTGRES__DSN, PGPASSWORD)."""


LIVE_SOURCES = (
    "kraken",
    "binance",
    "coinbase",
    "coinbase-exchange",
    "coinbase-l3",
    "bybit",
    "bybit-v2",
    "bitmex",
    "okx",
    "bitget",
    "binance-coinm",
    "binance-usdm",
    "kraken-futures",
    "deribit",
    "bitfinex",
    "bitstamp",
    "gemini",
    "huobi",
    "huobi-coin-swap",
    "cryptocom",
    "phemex",
    "kucoin",
    "gateio",
)
FILE_SOURCES = ("capture", "itch", "lobster", "databento")
FEED_SOURCES = ("sim", *LIVE_SOURCES, *FILE_SOURCES)


@dataclass(frozen=True)
class FeedConfig:
    source: str = "sim"
    """Where books come from: sim, a live venue (kraken, binance, coinbase,
    coinbase-exchange, coinbase-l3) or a file replay (capture, itch, lobster, databento;
    set file)."""
    file: str = ""
    """The file a replay source reads."""
    speed: str = "max"
    """Replay pace: max, or a multiple of real time (1 = as recorded)."""
    url: str = ""
    """WebSocket endpoint of a live venue (empty: the venue's public endpoint)."""
    rest_url: str = ""
    """REST base URL of a live venue (empty: the venue's public API)."""
    venue: str = "SIM"
    """Venue name of the simulated exchange."""
    symbols: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD")
    """Symbols of the simulated exchange or live venue (as the venue names them), or ITCH
    stocks."""
    seed: int = 1
    """Seed of the simulated order flow: the same seed gives the same books and trades."""
    rate: float = 200.0
    """Simulated orders per second per symbol (0 = as fast as possible)."""
    max_orders: int = 0
    """Stop generating after this many orders per symbol (0 = never)."""
    snapshot_interval_ms: int = 200
    """How often the latest book snapshot is stored (Redis, or memory when embedded)."""
    stale_alarm_s: float = 30.0
    """Seconds a live venue's book may stay stale (resyncing) before the feed's /healthz
    says not ok (the HubVenueBookStale alert waits a minute)."""
    metrics_host: str = "127.0.0.1"
    """Address of /metrics and /healthz (0.0.0.0 in containers)."""
    metrics_port: int = 9101
    """Port of /metrics and /healthz (0 picks a free one)."""

    def __post_init__(self) -> None:
        if self.source not in FEED_SOURCES:
            raise ConfigError(
                f"feed.source: unknown source {self.source!r} (one of {', '.join(FEED_SOURCES)})"
            )
        if self.source in FILE_SOURCES and not self.file:
            raise ConfigError(f"feed.source {self.source!r} replays a file: set feed.file")
        if self.speed != "max":
            try:
                ok = float(self.speed) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError(
                    f"feed.speed: expected 'max' or a positive number, got {self.speed!r}"
                )


@dataclass(frozen=True)
class FanoutConfig:
    host: str = "127.0.0.1"
    """Address the WebSocket server binds."""
    port: int = 8765
    """Port of the WebSocket API, the web page, /metrics and /healthz (0 picks a free one)."""
    stale_after_s: float = 60.0
    """Seconds a synced stream whose venue is live may go without a new seq (and the source
    without any event) before /healthz says not ok; 0: never."""
    max_duplicates: int = 10_000
    """Duplicate updates in a row (no new seq) after which /healthz names the stream stuck."""
    flush_ms: int = 5
    """At most one frame per connection per this interval (an update on a quiet node goes
    out at once)."""
    history_kib: int = 1024
    """Bytes (KiB) of book messages kept per book feed (and l3) for resuming clients; a
    resume from further back gets a fresh snapshot."""
    max_views: int = 500
    """Book views (depth and checksum variants of a book) this node serves at once; each
    costs work on every update. Views are shared and freed with their last subscriber."""
    max_views_per_key: int = 50
    """Book views one key (each anonymous connection on its own) may hold at once."""
    queue_limit: int = 20000
    """Messages a lagging connection may have queued before it is reset to fresh snapshots."""
    send_buffer_kib: int = 512
    """A connection whose socket holds more unsent bytes than this is lagging: its book
    deltas are conflated until it drains."""
    max_resets: int = 3
    """Resets to snapshots a lagging connection may get in a minute before it is closed."""
    slow_timeout_s: float = 30.0
    """A lagging connection whose socket buffer does not shrink for this long is closed as a
    slow consumer (1013); also the longest a closed slow reader gets to read up to the close
    frame."""
    anonymous: bool = False
    """Serve clients without a credential (hub demo turns this on)."""
    keys: str = ""
    """TOML file of API keys with their channels and limits (docs/protocol.md)."""
    max_connections: int = 10000
    """Open connections on this node."""
    max_errors: int = 20
    """Bad requests a connection may send in 10 s before it is closed."""
    heartbeat_s: float = 5.0
    """A heartbeat message goes to any connection that got nothing for this long."""
    client_timeout_s: float = 60.0
    """A connection that sent nothing (not even a ping) for this long is closed (0: never)."""
    auth_timeout_s: float = 5.0
    """Time a client without a header or URL credential has to send its auth message."""
    max_token_lifetime_s: float = 86400.0
    """Longest lifetime a client's JWT may have: exp - iat, or exp - now without iat (0: no
    maximum)."""
    deflate: bool = True
    """Let clients ask for permessage-deflate with ?deflate=1 (never on without asking)."""
    group: str = ""
    """Node name (defaults to fanout-<pid>)."""
    workers: int = 1
    """Node processes sharing the port through SO_REUSEPORT (``hub fanout --workers``, and
    ``hub demo --workers``, fed by the demo feed's relay); 0: one per core. Limits
    (max_connections, per-key) apply in each worker."""
    database: bool = False
    """Answer REST candle ranges from the recorder's TimescaleDB (postgres.dsn); off: from
    the bars the node holds in memory."""
    replay_dirs: tuple[str, ...] = ()
    """Folders whose recorded files clients may replay on /replay (by name inside them:
    ``capture:gemini.jsonl.zst``); empty: the endpoint refuses every replay."""
    max_replays: int = 4
    """Replays this node plays at once (each costs its share of the node's CPU)."""


@dataclass(frozen=True)
class ConsolidateConfig:
    metrics_host: str = "127.0.0.1"
    """Address of ``hub consolidate``'s /metrics and /healthz (0.0.0.0 in containers)."""
    metrics_port: int = 9104
    """Port of /metrics and /healthz (0 picks a free one)."""


@dataclass(frozen=True)
class RecorderConfig:
    group: str = "hub-recorder"
    """Kafka consumer group shared by all recorders."""
    batch_size: int = 2000
    """Most rows written in one database transaction."""
    flush_ms: int = 200
    """Longest wait before a partial batch is written."""
    metrics_host: str = "127.0.0.1"
    """Address of /metrics and /healthz (0.0.0.0 in containers)."""
    metrics_port: int = 9103
    """Port of /metrics and /healthz (0 picks a free one)."""
    publish_bars: bool = True
    """Publish every bar a batch changes, as stored, to <prefix>.bars (the fanout nodes'
    candles channel)."""
    retention_days: int = 0
    """Drop raw trades older than this many days (0: keep them); bars stay. A policy on the
    full TimescaleDB edition, an hourly drop_chunks by the recorder on the Apache edition."""
    max_lag: int = 50_000
    """Consumed-but-unstored messages above which the recorder's /healthz says not ok
    (as the HubRecorderLagging alert does)."""


@dataclass(frozen=True)
class OrdersConfig:
    enabled: bool = False
    """Run the co-located order path (order entry, risk, matching) in the feed process;
    needs feed.source = sim, the hub's own venue."""
    host: str = "127.0.0.1"
    """Address of the order-entry WebSocket server (and its /metrics, /healthz)."""
    port: int = 8770
    """Port of the order-entry WebSocket server (0 picks a free one)."""
    log: str = "file"
    """Where the venue's sequenced log lives: file (the journal below, fdatasync'd) or kafka
    (the topic <kafka.topic_prefix>.orders.log, acks=all; hub feed only)."""
    journal: str = "var/orders.journal"
    """The journal file: every accepted command, durable before it is acknowledged."""
    fsync: bool = True
    """fsync each group commit (off only for benchmarks that measure without it)."""
    checkpoint_every: int = 200_000
    """Write a checkpoint of the venue and start a new journal generation after this many
    journaled commands, so restarts replay at most that many (0: never; file log only)."""
    accounts: str = ""
    """TOML file of trader accounts, keys and limits (empty: demo accounts trader-1..10 with
    keys demo-key-1..10)."""
    max_rejects: int = 50
    """Rate-limited or malformed messages a connection may send before it is disconnected."""
    max_token_lifetime_s: float = 86400.0
    """Longest lifetime a logon JWT may have: exp - iat, or exp - now without iat (0: no
    maximum)."""
    record: bool = False
    """Also write execution reports (with orders, fills and positions views) to PostgreSQL
    (postgres.dsn), off the hot path."""

    def __post_init__(self) -> None:
        if self.log not in ("file", "kafka"):
            raise ConfigError(f"orders.log: expected file or kafka, got {self.log!r}")


@dataclass(frozen=True)
class HubConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    postgres: PostgresConfig = field(default_factory=PostgresConfig)
    feed: FeedConfig = field(default_factory=FeedConfig)
    fanout: FanoutConfig = field(default_factory=FanoutConfig)
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    consolidate: ConsolidateConfig = field(default_factory=ConsolidateConfig)
    orders: OrdersConfig = field(default_factory=OrdersConfig)
    log_level: str = "info"
    """debug, info, warning or error."""
    shutdown_timeout_s: float = 20.0
    """Bound of a clean stop after SIGTERM/SIGINT: a process still running after it (or
    given a second signal) logs why, dumps its tasks' stacks and exits with code 1."""
    gc_full_every_s: float = 60.0
    """Full garbage collections of a long-running process on this schedule, not Python's
    (app/gc_schedule.py: start-up objects frozen, young collections as usual); 0: Python's
    own, which stalls a busy order path for 50-100 ms every second or two."""


T = TypeVar("T")
ENV_PREFIX = "HUB_"


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(where: str, value: Any, kind: Any) -> Any:
    """Convert a TOML or environment value to the field's type, or raise ConfigError."""
    origin = get_origin(kind)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if kind is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {kind!r}")


def _build(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in names:
            raise ConfigError(f"unknown setting '{where}{key}'{_suggest(key, names)}")
        kind = hints[key]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, Mapping):
                raise ConfigError(f"setting '{where}{key}' must be a table")
            kwargs[key] = _build(kind, value, f"{where}{key}.")  # type: ignore[arg-type]
        else:
            if isinstance(kind, types.UnionType):
                kind = get_args(kind)[0]
            kwargs[key] = _coerce(f"{where}{key}", value, kind)
            if _is_port(key, kind):
                _check_port(f"{where}{key}", kwargs[key])
    return cls(**kwargs)


def _is_port(name: str, kind: Any) -> bool:
    return kind is int and (name == "port" or name.endswith("_port"))


def _check_port(where: str, port: int) -> None:
    """A TCP port: 1-65535, or 0 for "any free port" (the OS picks one at bind time)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: port must be 1-65535 (0: any free port), got {port}")


SECRET_NAMES = ("password", "secret", "token", "api_key")
"""Settings whose whole value is a secret (none today; masked in full if one is added)."""
_URL_PASSWORD = re.compile(r"(://[^:@/\s]*):[^@/\s]*@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|secret|token)=(\S+)")
_QUERY_PASSWORD = re.compile(r"(?i)([?&](?:password|secret|token)=)[^&\s]*")


def mask_secret(text: str) -> str:
    """``text`` with the passwords of URLs (``scheme://user:***@host``), libpq key=value
    DSNs (``password=***``) and query strings masked."""
    text = _URL_PASSWORD.sub(r"\1:***@", text)
    text = _QUERY_PASSWORD.sub(r"\1***", text)
    return _KV_PASSWORD.sub(r"\1=***", text)


def masked(cfg: HubConfig) -> dict[str, Any]:
    """The configuration as a dict for display (``hub config``): every string setting with
    its embedded passwords masked (postgres.dsn, redis.url, kafka.bootstrap...), and any
    setting named like a secret masked in full."""

    def walk(node: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(value, dict):
                out[key] = walk(value)
            elif isinstance(value, str) and any(s in key for s in SECRET_NAMES):
                out[key] = "***" if value else ""
            elif isinstance(value, str):
                out[key] = mask_secret(value)
            else:
                out[key] = value
        return out

    return walk(dataclasses.asdict(cfg))


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_names() -> dict[str, str]:
    """Each setting's variable name as a near miss would write it (lower case, without
    HUB_, one underscore after the section) -> as it is (``feed_seed`` -> ``feed__seed``)."""
    names: dict[str, str] = {}
    for name, kind in get_type_hints(HubConfig).items():
        if dataclasses.is_dataclass(kind):
            for sub in dataclasses.fields(kind):
                names[f"{name}_{sub.name}"] = f"{name}__{sub.name}"
        else:
            names[name] = name
    return names


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings in ``env``: every ``HUB_<SECTION>__<KEY>`` (checked like the file's
    keys) and the top-level ``HUB_<KEY>`` ones. Other ``HUB_*`` names (``HUB_TOKEN``,
    tooling variables) are not settings and are left alone, except near misses of a
    setting's name (``HUB_FEED_SEED``, ``HUB_LOG_LEVL``), refused like misspelt keys."""
    near = _env_names()
    tree: dict[str, Any] = {}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name == "HUB_CONFIG":
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if "__" not in key:
            if key in near and near[key] == key:
                tree[key] = value
                continue
            close = [key] if key in near else difflib.get_close_matches(key, near, 1, 0.8)
            if close:
                meant = f"HUB_{near[close[0]].upper()}"
                raise ConfigError(f"unknown setting {name} (did you mean {meant}?)")
            continue
        parts = key.split("__")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another setting")
        node[parts[-1]] = value
    return tree


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> HubConfig:
    """Build the configuration from file, environment and overrides; reject unknown keys."""
    env = {} if env is None else env
    tree: dict[str, Any] = {}
    if path is None and env.get("HUB_CONFIG"):
        path = Path(env["HUB_CONFIG"])
    if path is not None:
        tree = load_toml(path, "config file", ConfigError)
    tree = _merge(tree, _from_env(env))
    tree = _merge(tree, overrides or {})
    return _build(HubConfig, tree, "")
