"""24-hour rolling statistics of a stream's trades: the ``ticker`` channel and REST ticker.

The window is the last 1440 whole minutes of event time, ending with the minute of
the latest trade (event time, not the wall clock: a replayed capture has a ticker
of its own day). Each minute keeps its open, high, low, close, volume, notional
and trade count; a trade older than the window is not counted. Open is the
oldest minute's first trade and last the newest minute's last trade, both by
(event time, seq), the recorder's bar rule, so a late trade lands where it
belongs. Running sums make a trade O(1); high and low are recomputed over the
minutes only when a minute leaves the window (at most once a minute of event time).
A node with the recorder's database seeds the minutes before its first trade from
the stored one-minute bars (``seed``), so its ticker covers the day from the start.

Sans-I/O and in integer ticks and lots: ``fields`` turns the state into the
decimal strings of the protocol with the stream's instrument.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from hub.events import Bar, Instrument

MINUTE_NS = 60 * 1_000_000_000
WINDOW_MINUTES = 1440
"""Minutes in the rolling window (24 h)."""
WINDOW_NS = WINDOW_MINUTES * MINUTE_NS
Key = tuple[int, int]
"""A trade's place in time: (ts_event, seq)."""


class Minute:
    """One minute of trades."""

    __slots__ = ("close", "first", "high", "last", "low", "notional", "open", "trades", "volume")

    def __init__(self, price: int, size: int, at: Key) -> None:
        self.open = self.high = self.low = self.close = price
        self.volume = size
        self.notional = price * size
        self.trades = 1
        self.first = self.last = at

    def add(self, price: int, size: int, at: Key) -> None:
        if at < self.first:
            self.open, self.first = price, at
        if at > self.last:
            self.close, self.last = price, at
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.volume += size
        self.notional += price * size
        self.trades += 1


class Ticker:
    """One stream's rolling 24 h of trades."""

    __slots__ = (
        "epoch",
        "high",
        "latest",
        "low",
        "minutes",
        "notional",
        "order",
        "seq",
        "trades",
        "volume",
    )

    def __init__(self) -> None:
        self.minutes: dict[int, Minute] = {}
        self.order: list[int] = []
        """Minute starts held, oldest first."""
        self.volume = 0
        self.notional = 0
        self.trades = 0
        self.high: int | None = None
        self.low: int | None = None
        self.seq = 0
        """Trade seq of the latest trade counted (of ``epoch``)."""
        self.epoch = 0
        self.latest: Key = (0, 0)

    @property
    def end(self) -> int:
        """Start (ns) of the newest minute held (0: none)."""
        return self.order[-1] if self.order else 0

    @property
    def window_start(self) -> int:
        """Start (ns) of the oldest minute the window can hold."""
        return self.end - WINDOW_NS + MINUTE_NS if self.order else 0

    def add(self, price: int, size: int, ts_event: int, seq: int, epoch: int = 0) -> bool:
        """Count one trade; False when it is older than the window (not counted)."""
        start = ts_event - ts_event % MINUTE_NS
        if self.order and start < self.window_start:
            return False
        at = (ts_event, seq)
        minute = self.minutes.get(start)
        if minute is None:
            self.minutes[start] = Minute(price, size, at)
            if not self.order or start > self.order[-1]:
                self.order.append(start)
            else:
                insort(self.order, start)
        else:
            minute.add(price, size, at)
        if at >= self.latest:
            self.latest, self.seq, self.epoch = at, seq, epoch
        self.volume += size
        self.notional += price * size
        self.trades += 1
        self.high = price if self.high is None else max(self.high, price)
        self.low = price if self.low is None else min(self.low, price)
        self._expire()
        return True

    def seed(self, bars: Iterable[Bar]) -> int:
        """Count the recorder's one-minute bars of minutes before the first minute this
        ticker has trades of (so a node that just started has the whole day's statistics);
        how many it took. A seeded minute's trades sit at its start (open) and its last
        nanosecond (close)."""
        first_live = self.order[0] if self.order else None
        taken = 0
        for bar in bars:
            start = bar.start
            if bar.interval_s != 60 or start in self.minutes:
                continue
            if first_live is not None and start >= first_live:
                continue
            minute = Minute(bar.open, bar.volume, (start, 0))
            minute.high, minute.low, minute.close = bar.high, bar.low, bar.close
            minute.notional, minute.trades = bar.notional, bar.trades
            minute.last = (start + MINUTE_NS - 1, 0)
            self.minutes[start] = minute
            insort(self.order, start)
            self.volume += minute.volume
            self.notional += minute.notional
            self.trades += minute.trades
            taken += 1
        if taken:
            self.high = max(m.high for m in self.minutes.values())
            self.low = min(m.low for m in self.minutes.values())
            if first_live is None:
                self.latest = self.minutes[self.order[-1]].last
            self._expire()
        return taken

    def _expire(self) -> None:
        floor = self.window_start
        gone = 0
        while self.order[gone] < floor:
            minute = self.minutes.pop(self.order[gone])
            self.volume -= minute.volume
            self.notional -= minute.notional
            self.trades -= minute.trades
            gone += 1
        if gone:
            del self.order[:gone]
            self.high = max(m.high for m in self.minutes.values())
            self.low = min(m.low for m in self.minutes.values())

    @property
    def open(self) -> int | None:
        return self.minutes[self.order[0]].open if self.order else None

    @property
    def last(self) -> int | None:
        return self.minutes[self.order[-1]].close if self.order else None

    @property
    def last_ts(self) -> int:
        """Event time of the latest trade counted (0: none)."""
        return self.minutes[self.order[-1]].last[0] if self.order else 0

    def fields(self, inst: Instrument) -> dict[str, Any]:
        """The statistics as the protocol sends them: decimal strings in the instrument's
        units (prices null while no trade is in the window)."""
        tick, lot = inst.tick, inst.lot
        opened, last = self.open, self.last
        out: dict[str, Any] = {
            "epoch": self.epoch,
            "seq": self.seq,
            "ts_event": self.last_ts,
            "window_start": self.window_start,
            "open": None,
            "high": None,
            "low": None,
            "last": None,
            "change": None,
            "change_pct": None,
            "volume": lot.to_str(self.volume),
            "notional": notional_str(self.notional, inst),
            "trades": self.trades,
        }
        if opened is None or last is None or self.high is None or self.low is None:
            return out
        out.update(
            open=tick.to_str(opened),
            high=tick.to_str(self.high),
            low=tick.to_str(self.low),
            last=tick.to_str(last),
            change=tick.to_str(last - opened),
            change_pct=percent(last - opened, opened),
        )
        return out


def notional_str(notional: int, inst: Instrument) -> str:
    """sum(price ticks x size lots) as an exact decimal string."""
    value = Decimal(notional) * Decimal(inst.tick_size) * Decimal(inst.lot_size)
    return format(value.normalize(), "f") if notional else "0"


def percent(change: int, base: int) -> str:
    """100 x change / base, rounded half-even to two decimals ("0.00" when base is 0)."""
    if base == 0:
        return "0.00"
    value = (Decimal(change) * 100 / Decimal(base)).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    return format(value, "f") if value else "0.00"


def encode_ticker(inst: Instrument, ticker: Ticker) -> bytes:
    """A ``ticker`` message: the stream's statistics as of its latest trade."""
    return orjson.dumps(
        {"type": "ticker", "venue": inst.venue, "symbol": inst.symbol, **ticker.fields(inst)}
    )
