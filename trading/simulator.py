"""The simulated exchange: deterministic order flow through the matching engine.

Sans-I/O: ``SimulatedExchange.step`` takes the receive time and returns the
sequenced events one order produced; nothing here sleeps, sends or awaits.
``SimulatedExchange.publish`` makes those public events (trades, one book update per
command with its order changes) of any engine command, the venue's traders' too.
The same (symbol, seed) always gives the same orders, books and trades,
which lets tests rebuild the exact book a running feed must have.

The price process (``FairValue``, one step per order): a fair value in ticks
follows a random walk whose per-order volatility (``SimSpec.step_vol`` ticks in the
calm regime) is multiplied by ``VOLATILE_FACTOR`` in the volatile regime; regimes
switch at random (``CALM_TO_VOLATILE``/``VOLATILE_TO_CALM`` per order), a slow trend
(a mean-reverting drift) and rare jumps (``JUMP_PROB``) move it further. The walk is
geometric (volatility scales with the price) and reflects off ``MIN_FAIR`` of the
start price, so it never reaches zero. Floats live only in this model (their JSON
form round-trips exactly); every price and size sent to the engine is an integer.

The order flow (``OrderFlow``) places limit orders at an exponentially distributed
distance (mean ``SimSpec.depth_ticks``) behind the fair value, sends marketable
orders when the fair value has moved past the touch (and a few market orders), and
cancels with a probability that grows with the number of its resting orders,
choosing the farthest from the fair value and oldest of a few sampled. Bounds:

- resting simulated orders per symbol <= ``SimSpec.max_resting`` (default
  ``MAX_RESTING``, 4000): at the cap the flow only cancels or trades (market orders);
  in practice the cancellation pressure holds it well below the cap at any rate.
- ``OrderFlow._live`` (ids of the flow's possibly resting orders, the only list
  that grows with orders) <= ``max_resting``: ids of filled orders are pruned when
  sampled, every ``PRUNE_EVERY`` orders and every ``PRUNE_FULL`` while the list is at
  the cap (which counts as full until then).
- ``PublicOrders`` holds exactly the engine's resting orders (traders' ones too,
  which the venue bounds); nothing else here grows with time (counters only).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from hub.events import BookSnapshot, BookUpdate, Event, Instrument, OrderChange, RestingOrder, Trade
from hub.orders import ADD, DELETE, UPDATE
from hub.symbology import Listing, SymbologyError, listed, spot
from orderbook_core import MatchingEngine, Side
from orderbook_core.engine_types import BookEvent, EngineEvent, ExecEvent, OrderType, TradeEvent

MAX_RESTING = 4000
"""Default cap of the flow's resting orders per symbol (``SimSpec.max_resting``)."""


@dataclass(frozen=True)
class SimSpec:
    """Instrument data, starting price and price/flow scale of a simulated symbol.

    ``step_vol``: the fair value's standard deviation per order in ticks (calm regime, at
    the start price); ``depth_ticks``: mean distance of limit orders from the fair value.
    """

    tick_size: str
    lot_size: str
    start_price: int
    max_lots: int
    step_vol: float = 1.0
    depth_ticks: float = 12.0
    max_resting: int = MAX_RESTING


DEFAULT_SPECS = {
    "BTC-USD": SimSpec("0.01", "0.00001", 6_500_000, 50_000, step_vol=5.0, depth_ticks=60.0),
    "ETH-USD": SimSpec("0.01", "0.0001", 300_000, 20_000, step_vol=0.8, depth_ticks=12.0),
    "SOL-USD": SimSpec("0.001", "0.01", 150_000, 5_000, step_vol=0.6, depth_ticks=10.0),
}
ACCOUNTS = 50
"""Simulated trader accounts; order ids are spread over them."""
GENERIC_SPEC = SimSpec("0.01", "0.001", 10_000, 5_000, step_vol=0.3, depth_ticks=6.0)

VOLATILE_FACTOR = 4.0
"""Volatility of the volatile regime, in multiples of the calm one."""
CALM_TO_VOLATILE = 1 / 60_000
VOLATILE_TO_CALM = 1 / 15_000
"""Per-order switching probabilities: calm spells last ~60k orders, volatile ~15k."""
TREND_STEPS = 50_000
"""Memory of the trend (a mean-reverting drift), in orders."""
TREND_EVERY = 256
"""Orders between updates of the trend."""
TREND_STD = 0.005
"""Typical size of the trend, in calm standard deviations per order."""
JUMP_PROB = 1 / 40_000
JUMP_SIGMAS = 300.0
"""A jump moves the fair value by ~N(0, JUMP_SIGMAS) calm deviations and turns volatile."""
MIN_FAIR = 0.1
"""The fair value reflects off this fraction of the start price."""
_TREND_DECAY = 1 - TREND_EVERY / TREND_STEPS
_TREND_KICK = TREND_STD * (2 * TREND_EVERY / TREND_STEPS) ** 0.5

CANCEL_BASE, CANCEL_SLOPE = 0.01, 0.5
"""Cancel probability per order: BASE + SLOPE * resting / max_resting."""
CHASE_PROB, CHASE_MAX = 0.15, 0.8
"""Probability of a marketable order while the fair value is past the touch: PROB per
``step_vol`` of distance past it, at most MAX."""
MARKET_PROB = 0.03
"""Probability of a (noise) market order otherwise."""
NEAR_PROB = 0.25
"""Share of limit orders placed near the fair value (a tenth of the usual distance)."""
REQUOTE_SHARE = 0.6
"""Share of those that instead cancel the flow's stale order at the touch (a requote)."""
CANCEL_SAMPLE = 4
"""Resting orders sampled per cancel; the farthest from the fair value (and oldest) goes."""
STALE_WEIGHT = 3.0
"""Extra weight of the distance of an order the fair value has moved past (a stale quote)."""
AGE_ORDERS = 20_000
"""Age, in orders, that counts as much as ``depth_ticks`` of distance when cancelling."""
PRUNE_EVERY = 2048
PRUNE_FULL = 64
"""Orders between prunes of filled ids from ``OrderFlow._live``; at the cap, more often."""


class SimOrder(NamedTuple):
    """One order-flow action: ``kind`` is limit, market or cancel."""

    kind: str
    order_id: int
    side: int
    price: int
    size: int


class FairValue:
    """The fair value in ticks: a geometric random walk with regimes, trend and jumps."""

    def __init__(self, spec: SimSpec) -> None:
        self.start = float(spec.start_price)
        self.rel_vol = spec.step_vol / spec.start_price
        self.value = self.start
        self.volatile = False
        self.drift = 0.0
        """The trend, in calm standard deviations per order."""

    def step(self, rng: random.Random, count: int) -> float:
        """Move one order on (``count``: orders so far); return the new value."""
        calm = self.rel_vol * self.value
        if count % TREND_EVERY == 0:
            self.drift = self.drift * _TREND_DECAY + rng.gauss(0.0, _TREND_KICK)
        noise = rng.gauss(0.0, VOLATILE_FACTOR if self.volatile else 1.0)
        value = self.value + calm * (self.drift + noise)
        u = rng.random()
        if u < JUMP_PROB:
            value += calm * rng.gauss(0.0, JUMP_SIGMAS)
            self.volatile = True
        elif u < JUMP_PROB + (VOLATILE_TO_CALM if self.volatile else CALM_TO_VOLATILE):
            self.volatile = not self.volatile
        floor = self.start * MIN_FAIR
        if value < floor:
            value = 2 * floor - value
        self.value = value
        return value

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "volatile": self.volatile, "drift": self.drift}

    def restore(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])
        self.volatile = bool(state["volatile"])
        self.drift = float(state["drift"])


class OrderFlow:
    """Random but reproducible order flow around a moving fair value, bounded by
    construction (see the module docstring)."""

    def __init__(self, symbol: str, seed: int, spec: SimSpec) -> None:
        self._rng = random.Random((seed << 32) ^ zlib.crc32(symbol.encode()))
        self._spec = spec
        self.fair = FairValue(spec)
        self._next_id = 1
        self._count = 0
        self._live: list[int] = []
        """Ids of the flow's limit orders that may still rest (filled ones pruned lazily)."""

    def state(self) -> dict[str, Any]:
        """Everything needed to go on generating exactly the same orders (JSON-able)."""
        version, internal, gauss = self._rng.getstate()
        return {
            "rng": [version, list(internal), gauss],
            "fair": self.fair.state(),
            "next_id": self._next_id,
            "count": self._count,
            "live": list(self._live),
        }

    def restore(self, state: dict[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self._rng.setstate((version, tuple(internal), gauss))
        if "fair" in state:
            self.fair.restore(state["fair"])
        else:  # a checkpoint of the old flow: the walk starts at its reference price
            self.fair.restore({"value": state["ref"], "volatile": False, "drift": 0.0})
        self._next_id = state["next_id"]
        self._count = state.get("count", 0)
        self._live = list(state["live"])

    @property
    def live(self) -> int:
        """Ids held as possibly resting (>= the flow's resting orders, <= max_resting)."""
        return len(self._live)

    def _prune(self, engine: MatchingEngine) -> None:
        resting = engine.resting
        self._live = [oid for oid in self._live if resting(oid) is not None]

    def _pick_cancel(self, engine: MatchingEngine, fair: float) -> int | None:
        """Of a few sampled resting orders, the farthest from ``fair`` and oldest; ids of
        orders no longer resting met on the way are dropped."""
        live, rng = self._live, self._rng
        depth = self._spec.depth_ticks
        best: list[float] = []  # [score, index]
        tries = 0
        while live and tries < 4 * CANCEL_SAMPLE and (tries < CANCEL_SAMPLE or not best):
            tries += 1
            idx = rng.randrange(len(live))
            now = engine.resting(live[idx])
            if now is None:
                last = len(live) - 1
                live[idx] = live[last]
                live.pop()
                if best and best[1] == last:
                    best[1] = idx
                continue
            off = now[1] - fair if now[0] == Side.BID else fair - now[1]  # > 0: stale side
            score = (abs(off) + STALE_WEIGHT * max(off, 0.0)) / depth
            score += (self._next_id - live[idx]) / AGE_ORDERS
            if not best or score > best[0]:
                best = [score, idx]
        if not best:
            return None
        idx = int(best[1])
        oid = live[idx]
        live[idx] = live[-1]
        live.pop()
        return oid

    def _stale_touch(
        self, engine: MatchingEngine, side: int, touch: tuple[int, int] | None
    ) -> int | None:
        """The flow's oldest order at the touch of ``side`` (its id stays in ``_live``
        until pruned), or None when the level holds none of them."""
        if touch is None:
            return None
        for oid in engine.order_ids(side, touch[0]):
            if oid < self._next_id:  # ours: traders' ids are far above the flow's
                return int(oid)
        return None

    def next_order(self, engine: MatchingEngine) -> SimOrder:
        rng, spec = self._rng, self._spec
        self._count += 1
        fair = self.fair.step(rng, self._count)
        target = max(1, int(fair + 0.5))
        cap = spec.max_resting
        count = self._count
        if count % PRUNE_EVERY == 0 or (len(self._live) >= cap and count % PRUNE_FULL == 0):
            self._prune(engine)
        n = len(self._live)
        if n and rng.random() < CANCEL_BASE + CANCEL_SLOPE * n / cap:
            oid = self._pick_cancel(engine, fair)
            if oid is not None:
                return SimOrder("cancel", oid, 0, 0, 0)
            n = len(self._live)
        full = n >= cap
        oid = self._next_id
        self._next_id += 1
        size = 1 + int(rng.paretovariate(1.5) * spec.max_lots / 50) % spec.max_lots
        bid, ask = engine.best_bid(), engine.best_ask()
        roll = rng.random()
        chase, gap = -1, 0.0  # the side the fair value has run away from the touch to
        if ask is not None and fair >= ask[0] + 1:
            chase, gap = Side.BID, fair - ask[0]
        elif bid is not None and fair <= bid[0] - 1:
            chase, gap = Side.ASK, bid[0] - fair
        if chase >= 0 and roll < min(CHASE_MAX, CHASE_PROB * gap / spec.step_vol):
            if rng.random() < REQUOTE_SHARE:  # the stale quote at the touch is pulled
                stale = self._stale_touch(engine, 1 - chase, (ask if chase == Side.BID else bid))
                if stale is not None:
                    self._next_id -= 1  # no new order after all
                    return SimOrder("cancel", stale, 0, 0, 0)
            if full:
                return SimOrder("market", oid, chase, 0, max(1, size // 4))
            self._live.append(oid)  # marketable up to the fair value; the rest rests there
            return SimOrder("limit", oid, chase, target, size)
        side = Side.BID if rng.random() < 0.5 else Side.ASK
        roll = rng.random()
        if full or roll > 1 - MARKET_PROB:
            return SimOrder("market", oid, side, 0, max(1, size // 4))
        mean = spec.depth_ticks / 10 if rng.random() < NEAR_PROB else spec.depth_ticks
        offset = 1 + int(rng.expovariate(1 / mean))
        if side == Side.BID:  # passive: at most inside the spread, never through it
            price = target - offset if ask is None else min(target - offset, ask[0] - 1)
        else:
            price = target + offset if bid is None else max(target + offset, bid[0] + 1)
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


def sim_listing(venue: str, symbol: str) -> Listing | None:
    """The simulated venue's pairs are spot and named canonically (``BTC-USD``); a symbol
    that is not ``BASE-QUOTE`` has no listing (its symbol is its id)."""
    base, dash, quote = symbol.partition("-")
    if not dash:
        return None
    try:
        return spot(venue, symbol, base, quote)
    except SymbologyError:
        return None


class SimulatedExchange:
    """One symbol of the simulated venue: order flow, matching engine and sequencing."""

    def __init__(self, venue: str, symbol: str, seed: int, spec: SimSpec | None = None) -> None:
        spec = spec or DEFAULT_SPECS.get(symbol, GENERIC_SPEC)
        self.instrument = listed(
            Instrument(venue, symbol, spec.tick_size, spec.lot_size), sim_listing(venue, symbol)
        )
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
