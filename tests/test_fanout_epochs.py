"""Feed restarts and node fail-over under two fanout nodes on the real Kafka (Tansu) and Redis.

The feed is restarted twice, once with the same seed and once with another: each restart
is a new epoch (seqs start again at 1), both nodes and their subscribed clients follow it
within seconds, no client ever holds a crossed book, every delta was verified against the
source's checksum, and at the end every client book equals the feed's final Redis
snapshot. A recorder beside them stores every published trade of the three epochs exactly
once, and its bars equal the bars of the stored trades; once the feed is gone, each node's
/healthz turns 503 (the source is silent). Then a client loses its node to SIGKILL and
resumes its trades on the other: it receives exactly the trades the feed published in the
window, each once.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from bus.kafka import consumer, start_consumer
from client.market import HubClient
from hub.config import KafkaConfig
from hub.events import BookSnapshot, Trade, decode
from tests.conftest import stack_env

pytestmark = pytest.mark.services

SYMBOL = "BTC-USD"
KEY = ("SIM", SYMBOL)
TOKEN = "epochs-test-key-0123456789abcdef012345"
STALE_AFTER_S = 3
"""The nodes' ``fanout.stale_after_s``: a silent source turns /healthz 503 after it."""
BARS_DIFFER = """
WITH t AS (
    SELECT venue, symbol, time_bucket(make_interval(secs => $1), time) AS bucket,
           price_ticks AS p, size_lots AS s, ARRAY[ts_event, epoch, seq] AS k
    FROM trades
), want AS (
    SELECT venue, symbol, bucket, (array_agg(p ORDER BY k))[1] AS open, max(p) AS high,
           min(p) AS low, (array_agg(p ORDER BY k DESC))[1] AS close, sum(s) AS volume,
           sum(p * s) AS notional, count(*) AS trades
    FROM t GROUP BY venue, symbol, bucket
), have AS (SELECT * FROM bars WHERE interval_s = $1)
SELECT count(*) FROM want FULL JOIN have USING (venue, symbol, bucket)
WHERE (want.open, want.high, want.low, want.close, want.volume, want.notional, want.trades)
      IS DISTINCT FROM
      (have.open, have.high, have.low, have.close, have.volume, have.notional, have.trades)
"""
"""Bars (of one interval) that differ from the bars of the stored trades, either way."""


class Watched:
    """A subscribed client and what the test checks on every message it applies."""

    def __init__(self, client: HubClient) -> None:
        self.client = client
        self.crossed = 0
        self.trades: list[tuple[int, int]] = []
        self.resumes: list[dict[str, Any]] = []

    @property
    def book(self) -> Any:
        return self.client.books[KEY]

    async def read(self, seconds: float, until: Any = None) -> bool:
        """Read for ``seconds`` or until ``until()`` holds (then True)."""
        deadline = time.monotonic() + seconds
        stream = self.client.messages()  # a timeout ends it; what it had not yielded stays
        while time.monotonic() < deadline:
            if until is not None and until():
                return True
            try:
                msg = await asyncio.wait_for(anext(stream), deadline - time.monotonic())
            except TimeoutError:
                break
            if msg["type"] in ("snapshot", "book") and self.book.crossed():
                self.crossed += 1
            elif msg["type"] == "trade":
                self.trades.append((msg["epoch"], msg["seq"]))
            elif msg["type"] == "resumed":
                self.resumes.append(msg)
        return until is not None and until()


async def watched(url: str, others: list[str] | None = None) -> Watched:
    client = HubClient(url, token=TOKEN, others=others)
    deadline = time.monotonic() + 30
    while True:  # the node lists the stream once the feed's first events arrived
        await client.connect()
        if KEY in client.streams:
            break
        await client.close()
        assert time.monotonic() < deadline, "the stream never appeared"
        await asyncio.sleep(0.3)
    channels = [{"channel": "book", "symbol": SYMBOL}, {"channel": "trades", "symbol": SYMBOL}]
    answer = await client.subscribe(channels)
    assert answer["refused"] == []
    return Watched(client)


def stack(services: dict[str, str], unique: str, tmp_path: Path) -> dict[str, str]:
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[[key]]\nid = "trader"\nkey = "{TOKEN}"\n')
    return {**stack_env(services, unique), "HUB_FANOUT__KEYS": str(keys)}


def nodes(hub_process: Any, env: dict[str, str]) -> list[tuple[Any, str]]:
    out = []
    for name in ("a", "b"):
        proc = hub_process("fanout", "--port", "0", env={**env, "HUB_FANOUT__GROUP": name})
        port = proc.wait_for(r"serving ws://127.0.0.1:(\d+)/ws").group(1)
        out.append((proc, f"ws://127.0.0.1:{port}/ws"))
    return out


def health_status(url: str) -> int:
    """The HTTP status of a node's /healthz (served beside its WebSocket API)."""
    http = url.replace("ws://", "http://").removesuffix("/ws") + "/healthz"
    try:
        with urllib.request.urlopen(http, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def recorded(dsn: str, want: int) -> tuple[list[tuple[int, int]], dict[int, int]]:
    """The stored trades as (epoch, seq), in stream order, once ``want`` of them are in
    (or after 30 s); and the bars that differ from them, per interval."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline = time.monotonic() + 30
        while True:
            n = await conn.fetchval("SELECT count(*) FROM trades WHERE symbol = $1", SYMBOL)
            if n >= want or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1)  # a batch's bars commit with its trades; let a late one land
        rows = await conn.fetch(
            "SELECT epoch, seq FROM trades WHERE symbol = $1 ORDER BY epoch, seq", SYMBOL
        )
        differ = {i: await conn.fetchval(BARS_DIFFER, i) for i in (1, 60)}
        return [(r["epoch"], r["seq"]) for r in rows], differ
    finally:
        await conn.close()


def feed(hub_process: Any, env: dict[str, str], seed: int) -> Any:
    proc = hub_process(
        "feed", "--symbols", SYMBOL, "--seed", str(seed), "--rate", "300", "--metrics-port", "0",
        env=env,
    )  # fmt: skip
    proc.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics")
    return proc


def test_nodes_and_clients_follow_each_new_epoch_of_a_restarted_feed(
    hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path, database: str
) -> None:
    env = {**stack(services, unique, tmp_path), "HUB_POSTGRES__DSN": database}
    migrate = hub_process("db", "migrate", env=env)
    assert migrate.wait() == 0, migrate.stderr()
    recorder = hub_process("recorder", "--group", unique, "--metrics-port", "0", env=env)
    recorder.wait_for(r"metrics http://127.0.0.1:(\d+)/metrics")
    stale = {**env, "HUB_FANOUT__STALE_AFTER_S": str(STALE_AFTER_S)}
    (_a, url_a), (_b, url_b) = nodes(hub_process, stale)
    running = feed(hub_process, env, seed=7)

    async def scenario() -> list[Watched]:
        nonlocal running
        clients = [await watched(url_a), await watched(url_b)]
        epochs = []
        for seed in (7, 11):  # the same seed (same seqs, same prices), then another
            for c in clients:
                assert await c.read(15, lambda c=c: (c.book.seq or 0) > 20), "no live book"
            epoch = clients[0].book.epoch
            assert epoch > 0 and all(c.book.epoch == epoch for c in clients)
            epochs.append(epoch)
            assert running.stop() == 0, running.stderr()
            running = feed(hub_process, env, seed=seed)
            for c in clients:  # each node follows within seconds: a fresh snapshot, new epoch
                moved = await c.read(20, lambda c=c: c.book.epoch not in epochs)
                assert moved, f"{c.client.url} still on epoch {c.book.epoch}"
        for c in clients:
            await c.read(2)
        assert running.stop() == 0, running.stderr()
        final = decode(redis.Redis.from_url(services["redis"]).get(f"{unique}:book:SIM:{SYMBOL}"))  # type: ignore[arg-type]
        assert isinstance(final, BookSnapshot) and final.epoch not in epochs
        for c in clients:
            done = await c.read(
                30, lambda c=c: (c.book.epoch, c.book.seq) == (final.epoch, final.seq)
            )
            at, want = f"{c.book.epoch}/{c.book.seq}", f"{final.epoch}/{final.seq}"
            assert done, f"{c.client.url}: at {at}, final {want}"
            assert c.book.depth(0) == list(final.bids) and c.book.depth(1) == list(final.asks)
            await c.client.close()
        return clients

    clients = asyncio.run(scenario())
    for c in clients:
        assert c.crossed == 0, "a client saw a crossed book"
        assert c.book.checksums > 100  # source checksums verified on every delta
        assert len(c.trades) == len(set(c.trades)) > 0, "a trade was delivered twice"
        assert len({e for e, _ in c.trades}) == 3  # the trades of all three epochs
    published = asyncio.run(published_trades(services["kafka"], unique))
    assert len({e for e, _ in published}) == 3
    stored, differ = asyncio.run(recorded(database, len(published)))
    assert stored == sorted(published), "the recorder lost or repeated a trade"
    assert differ == {1: 0, 60: 0}, f"bars differ from the stored trades: {differ}"
    deadline = time.monotonic() + 3 * STALE_AFTER_S + 10
    codes = [0, 0]
    while codes != [503, 503] and time.monotonic() < deadline:
        codes = [health_status(url) for url in (url_a, url_b)]
        time.sleep(0.5)
    assert codes == [503, 503], f"nodes' /healthz with the feed gone: {codes}"
    assert recorder.stop() == 0, recorder.stderr()


async def published_trades(bootstrap: str, prefix: str) -> list[tuple[int, int]]:
    """Every trade in the feed's trades topic as (epoch, seq), in order."""
    cfg = KafkaConfig(bootstrap=bootstrap)
    c = consumer(cfg, f"{prefix}.trades", group=None)
    await start_consumer(cfg, c)
    out: list[tuple[int, int]] = []
    quiet = 0
    try:
        while quiet < 4:
            batch = await c.getmany(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            for records in batch.values():
                for r in records:
                    e = decode(r.value)
                    if isinstance(e, Trade) and e.symbol == SYMBOL:
                        out.append((e.epoch, e.seq))
    finally:
        await c.stop()
    return out


def test_a_client_failing_over_loses_and_repeats_no_trade(
    hub_process: Any, unique: str, services: dict[str, str], tmp_path: Path
) -> None:
    env = stack(services, unique, tmp_path)
    (node_a, url_a), (_b, url_b) = nodes(hub_process, env)
    running = feed(hub_process, env, seed=5)

    async def scenario() -> Watched:
        c = await watched(url_a, others=[url_b])
        assert await c.read(15, lambda: len(c.trades) > 30), "no trades"
        node_a.proc.kill()  # no goodbye: the client finds out from the dead socket
        assert await c.read(15, lambda: bool(c.resumes)), "never resumed"
        before = len(c.trades)
        assert await c.read(15, lambda: len(c.trades) > before + 30)
        await c.client.close()
        return c

    c = asyncio.run(scenario())
    assert running.stop() == 0, running.stderr()
    (trades,) = [a for a in c.resumes[0]["accepted"] if a["channel"] == "trades"]
    assert trades["resume"] == "replayed"
    published = asyncio.run(published_trades(services["kafka"], unique))
    first, last = published.index(c.trades[0]), published.index(c.trades[-1])
    assert c.trades == published[first : last + 1]  # none lost, none repeated, in order
    assert c.client.duplicates >= 0 and c.crossed == 0
