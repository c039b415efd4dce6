"""The simulated exchange: deterministic order flow through the matching engine.

Sans-I/O: ``SimulatedExchange.step`` takes the receive time and returns the
sequenced events one order produced; nothing here sleeps, sends or awaits.
``SimulatedExchange.publish`` makes those public events (trades, one book update per
command with its order changes) of any engine command, the venue's traders' too.
The same (symbol, seed) always gives the same orders, books and trades,
which lets tests rebuild the exact book a running feed must have.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.events import BookSnapshot, BookUpdate, Event, Instrument, OrderChange, RestingOrder, Trade
from hub.orders import ADD, DELETE, UPDATE
from orderbook_core import MatchingEngine, Side
from orderbook_core.engine_types import BookEvent, EngineEvent, ExecEvent, OrderType, TradeEvent


@dataclass(frozen=True)
class SimSpec:
    """Instrument data and starting price of a simulated symbol."""

    tick_size: str
    lot_size: str
    start_price: int
    max_lots: int


DEFAULT_SPECS = {
    "BTC-USD": SimSpec("0.01", "0.00001", 6_500_000, 50_000),
    "ETH-USD": SimSpec("0.01", "0.0001", 300_000, 20_000),
    "SOL-USD": SimSpec("0.001", "0.01", 150_000, 5_000),
}
ACCOUNTS = 50
"""Simulated trader accounts; order ids are spread over them."""
GENERIC_SPEC = SimSpec("0.01", "0.001", 10_000, 5_000)


@dataclass(frozen=True, slots=True)
class SimOrder:
    """One order-flow action: ``kind`` is limit, market or cancel."""

    kind: str
    order_id: int
    side: int
    price: int
    size: int


class OrderFlow:
    """Random but reproducible order flow around the current mid price."""

    def __init__(self, symbol: str, seed: int, spec: SimSpec) -> None:
        self._rng = random.Random((seed << 32) ^ zlib.crc32(symbol.encode()))
        self._spec = spec
        self._ref = spec.start_price
        self._next_id = 1
        self._live: list[int] = []

    def state(self) -> dict[str, Any]:
        """Everything needed to go on generating exactly the same orders (JSON-able)."""
        version, internal, gauss = self._rng.getstate()
        return {
            "rng": [version, list(internal), gauss],
            "ref": self._ref,
            "next_id": self._next_id,
            "live": list(self._live),
        }

    def restore(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        self._ref = state["ref"]
        self._next_id = state["next_id"]
        self._live = list(state["live"])

    def next_order(self, engine: MatchingEngine) -> SimOrder:
        rng = self._rng
        bid, ask = engine.best_bid(), engine.best_ask()
        if bid is not None and ask is not None:
            self._ref = (bid[0] + ask[0]) // 2
        if rng.random() < 0.02:
            self._ref = max(100, self._ref + rng.choice((-5, 5)))
        roll = rng.random()
        if roll < 0.30 and self._live:
            while self._live:
                idx = rng.randrange(len(self._live))
                oid = self._live[idx]
                self._live[idx] = self._live[-1]
                self._live.pop()
                if engine.resting(oid) is not None:
                    return SimOrder("cancel", oid, 0, 0, 0)
        oid = self._next_id
        self._next_id += 1
        side = rng.randrange(2)
        size = 1 + int(rng.paretovariate(1.5) * self._spec.max_lots / 50) % self._spec.max_lots
        if roll < 0.36:
            return SimOrder("market", oid, side, 0, max(1, size // 4))
        offset = int(rng.expovariate(1 / 6))
        if rng.random() < 0.07:
            price = self._ref + 1 + offset // 3 if side == Side.BID else self._ref - 1 - offset // 3
        else:
            price = self._ref - 1 - offset if side == Side.BID else self._ref + 1 + offset
        self._live.append(oid)
        return SimOrder("limit", oid, side, max(1, price), size)


class PublicOrders:
    """The order-level book as published, kept in step with a matching engine.

    Only orders named in a command's execution reports can change, so after each command
    just those are looked up: gone or moved (DELETE), smaller in place (UPDATE), or newly
    resting (ADD, at the back of its queue). Queue order is arrival order; a new order
    that arrived before orders already published at its level (the engine never does this
    today) has those deleted and added again behind it, so the queue order stays exact.
    """

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self.levels: dict[tuple[int, int], dict[int, tuple[int, int]]] = {}
        """(side, price) -> order id -> (arrival, displayed size), in queue order."""
        self.where: dict[int, tuple[int, int]] = {}
        for side in (0, 1):
            for price, _size, _n in engine.depth(side):
                level = self.levels[side, price] = {}
                for oid in engine.order_ids(side, price):
                    now = engine.resting(oid)
                    assert now is not None, f"order {oid} is queued but not resting"
                    _side, _price, shown, arrival = now
                    level[oid] = (arrival, shown)
                    self.where[oid] = (side, price)

    def changes(self, log: Sequence[EngineEvent]) -> list[OrderChange]:
        """The order changes caused by one command, given the events it returned."""
        oids = [e.order_id for e in log if isinstance(e, ExecEvent)]
        if len(oids) > 1:
            oids = list(dict.fromkeys(oids))
        out: list[OrderChange] = []
        resting, where, levels = self.engine.resting, self.where, self.levels
        for oid in oids:
            now = resting(oid)  # (side, price, shown size, arrival) or None
            old = where.get(oid)
            if old is not None:
                level = levels[old]
                arrival, size = level[oid]
                if now is not None and now[3] == arrival and now[2] <= size and now[:2] == old:
                    shown = now[2]
                    if shown < size:
                        out.append((UPDATE, old[0], old[1], shown, oid))
                        level[oid] = (arrival, shown)
                    continue
                out.append((DELETE, old[0], old[1], 0, oid))
                del level[oid], where[oid]
                if not level:
                    del levels[old]
            if now is not None:
                self._add(out, oid, *now)
        return out

    def _add(
        self, out: list[OrderChange], oid: int, side: int, price: int, shown: int, arrival: int
    ) -> None:
        """Publish a newly resting order at the back of its queue; orders published there
        that arrived after it are deleted and added again behind it."""
        key = (side, price)
        level = self.levels.get(key)
        if level is None:
            level = self.levels[key] = {}
        elif next(reversed(level.values()))[0] > arrival:
            behind = []
            for other, (later, size) in reversed(level.items()):
                if later < arrival:
                    break
                behind.append((other, later, size))
            for other, _later, _size in behind:
                out.append((DELETE, side, price, 0, other))
                del level[other]
            out.append((ADD, side, price, shown, oid))
            level[oid] = (arrival, shown)
            for other, later, size in reversed(behind):
                out.append((ADD, side, price, size, other))
                level[other] = (later, size)
            self.where[oid] = key
            return
        out.append((ADD, side, price, shown, oid))
        level[oid] = (arrival, shown)
        self.where[oid] = key

    def resting(self) -> tuple[RestingOrder, ...]:
        """Every published order, bids best first, then asks, each level in queue order."""
        return tuple(
            (side, price, size, oid)
            for side in (0, 1)
            for price, _size, _n in self.engine.depth(side)
            for oid, (_arrival, size) in self.levels[side, price].items()
        )


MARKET, LIMIT = int(OrderType.MARKET), int(OrderType.LIMIT)


class SimulatedExchange:
    """One symbol of the simulated venue: order flow, matching engine and sequencing."""

    def __init__(self, venue: str, symbol: str, seed: int) -> None:
        spec = DEFAULT_SPECS.get(symbol, GENERIC_SPEC)
        self.instrument = Instrument(venue, symbol, spec.tick_size, spec.lot_size)
        self.engine = MatchingEngine()
        self.flow = OrderFlow(symbol, seed, spec)
        self.book_seq = 0
        self.trade_seq = 0
        self.orders = 0
        self.last_ts = 0
        self.public = PublicOrders(self.engine)
        self.epoch = 0
        """The epoch its streams are published under (trading.feed.publish_start sets it):
        trade ids are ``<epoch>-<seq>``, unique across restarts (0: the seq alone)."""

    def step(self, ts: int) -> list[Event]:
        """Generate and execute one order; return its trades and book update."""
        order = self.flow.next_order(self.engine)
        self.orders += 1
        account = order.order_id % ACCOUNTS  # the simulated traders never self-trade-prevent
        if order.kind == "cancel":
            log = self.engine.cancel(order.order_id, account)
        else:
            kind = MARKET if order.kind == "market" else LIMIT
            log = self.engine.new_order(
                order.order_id, account, order.side, kind, order.price, order.size
            )
        return self.publish(log, ts)

    def publish(self, log: Sequence[EngineEvent], ts: int) -> list[Event]:
        """The public side of one engine command's events: its trades (aggressor from the
        engine) and one book update with every level it touched and its order changes, on
        this symbol's streams."""
        venue, symbol = self.instrument.venue, self.instrument.symbol
        events: list[Event] = []
        levels = []
        for e in log:
            if isinstance(e, TradeEvent):
                self.trade_seq += 1
                seq = self.trade_seq
                tid = f"{self.epoch}-{seq}" if self.epoch else str(seq)
                events.append(
                    Trade(venue, symbol, seq, tid, e.price, e.qty, e.aggressor_side, ts, ts)
                )
            elif isinstance(e, BookEvent):
                levels.append((e.side, e.price, e.size))
        orders = self.public.changes(log)  # kept in step even by a command with no level
        if levels or orders:
            self.book_seq += 1
            self.last_ts = ts
            events.append(
                BookUpdate(
                    venue,
                    symbol,
                    self.book_seq,
                    ts,
                    ts,
                    tuple(levels),
                    orders=tuple(orders),
                )
            )
        return events

    def state(self) -> dict[str, Any]:
        """The engine, the order flow and the stream seqs, JSON-able: ``restore`` continues
        exactly (the same commands then give the same events)."""
        return {
            "engine": self.engine.snapshot_state(),
            "flow": self.flow.state(),
            "book_seq": self.book_seq,
            "trade_seq": self.trade_seq,
            "orders": self.orders,
            "last_ts": self.last_ts,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.engine = type(self.engine).restore(state["engine"])
        self.flow.restore(state["flow"])
        self.book_seq = state["book_seq"]
        self.trade_seq = state["trade_seq"]
        self.orders = state["orders"]
        self.last_ts = state["last_ts"]
        self.public = PublicOrders(self.engine)

    def snapshot(self) -> BookSnapshot:
        """The current book and its orders, stamped with the seq of the last update it
        includes."""
        bids = tuple((p, s) for p, s, _n in self.engine.depth(Side.BID))
        asks = tuple((p, s) for p, s, _n in self.engine.depth(Side.ASK))
        return BookSnapshot(
            self.instrument.venue,
            self.instrument.symbol,
            self.book_seq,
            self.last_ts,
            bids,
            asks,
            self.public.resting(),
        )
