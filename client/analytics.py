"""pandas DataFrames of what the recorder stored: trades, bars, spreads and depth over a range.

    from client import analytics
    df = analytics.bars("postgresql://postgres@127.0.0.1:35432/hub", "BTC-USD",
                        "2026-09-21", "2026-09-22", interval_s=3600)

Each function reads one decimal view (docs/analytics.md), so prices and sizes are in
the units that applied at each row's time. ``instrument`` is a canonical id (every
venue that lists it: Kraken's ``XBT/USD`` and Coinbase's ``BTC-USD`` are both
``BTC-USD``) or a venue's own symbol, matched without regard to case; ``venue``
narrows it to one venue. The range is ``start <= time < end`` (ISO text or datetimes;
naive ones are UTC). Times come back as UTC timestamps; prices and sizes as float64,
or as exact ``Decimal`` objects with ``exact=True``. Needs the ``analytics`` extra
(pandas).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pandas as pd

from hub.db import connect, postgres_errors

When = str | dt.datetime | dt.date

STREAMS = """
SELECT DISTINCT venue, symbol FROM instrument_units
WHERE (upper(canonical) = upper(%(id)s) OR upper(symbol) = upper(%(id)s))
  AND (%(venue)s::text IS NULL OR upper(venue) = upper(%(venue)s::text))
"""
"""The (venue, symbol) streams an instrument names."""

VIEWS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "trades": (
        "trades_decimal",
        "time, venue, symbol, canonical, epoch, seq, trade_id, price, size, side",
        ("time", "epoch", "seq"),
    ),
    "bars": (
        "bars_decimal",
        "bucket, venue, symbol, canonical, open, high, low, close, volume, notional, vwap,"
        " trades, mixed_units",
        ("bucket",),
    ),
    "spreads": (
        "top_of_book_decimal",
        "time, venue, symbol, canonical, epoch, seq, bid, bid_size, ask, ask_size, spread, mid",
        ("time", "epoch", "seq"),
    ),
    "depth": (
        "book_snapshots_decimal",
        "time, venue, symbol, canonical, epoch, seq, bid_prices, bid_sizes, ask_prices, ask_sizes",
        ("time", "epoch", "seq"),
    ),
}
"""Per helper: the view it reads, the columns it returns, and its order within a stream."""


def _query(
    dsn: str,
    what: str,
    instrument: str,
    start: When,
    end: When,
    venue: str | None,
    exact: bool,
    extra: str = "",
    params: dict[str, Any] | None = None,
) -> pd.DataFrame:
    view, columns, order = VIEWS[what]
    timed = order[0]
    sql = (
        f"SELECT {columns} FROM {view} v"
        " JOIN unnest(%(venues)s::text[], %(symbols)s::text[]) AS w(venue, symbol)"
        " USING (venue, symbol)"
        f" WHERE v.{timed} >= %(start)s::timestamptz AND v.{timed} < %(end)s::timestamptz{extra}"
        f" ORDER BY {timed}, venue, symbol{''.join(f', {c}' for c in order[1:])}"
    )
    with postgres_errors(dsn), connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        streams = conn.execute(STREAMS, {"id": instrument, "venue": venue}).fetchall()
        cur = conn.execute(
            sql.encode(),
            {
                "venues": [str(s[0]) for s in streams],
                "symbols": [str(s[1]) for s in streams],
                "start": _text(start),
                "end": _text(end),
                **(params or {}),
            },
        )
        names = [d.name for d in cur.description or ()]
        frame = pd.DataFrame.from_records(cur.fetchall(), columns=names)
    return frame if exact else _floats(frame)


def _floats(frame: pd.DataFrame) -> pd.DataFrame:
    """Decimal columns as float64 (arrays of Decimals as lists of floats)."""
    for name in frame.columns:
        values = frame[name].dropna()
        if values.empty:
            continue
        first = values.iloc[0]
        if isinstance(first, Decimal):
            frame[name] = frame[name].astype("float64")
        elif isinstance(first, list) and first and isinstance(first[0], Decimal):
            frame[name] = frame[name].map(lambda xs: None if xs is None else [float(x) for x in xs])
    return frame


def _text(when: When) -> str:
    """A range end as timestamptz text: naive times are UTC."""
    if isinstance(when, dt.datetime):
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(when, dt.date):
        return f"{when.isoformat()} 00:00+00"
    stamp = pd.Timestamp(when.strip())
    return str((stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).isoformat())


def trades(
    dsn: str,
    instrument: str,
    start: When,
    end: When,
    venue: str | None = None,
    exact: bool = False,
) -> pd.DataFrame:
    """Every trade in the range: time, venue, symbol, canonical, epoch, seq, trade_id, price,
    size, side (buy/sell/none); by time, then venue and stream position."""
    return _query(dsn, "trades", instrument, start, end, venue, exact)


def bars(
    dsn: str,
    instrument: str,
    start: When,
    end: When,
    interval_s: int = 60,
    venue: str | None = None,
    exact: bool = False,
) -> pd.DataFrame:
    """The recorder's OHLCV bars of one interval (1, 60, 300, 3600 or 86400 s) whose bucket
    starts in the range, with vwap and ``mixed_units`` (docs/analytics.md)."""
    return _query(
        dsn,
        "bars",
        instrument,
        start,
        end,
        venue,
        exact,
        " AND v.interval_s = %(interval_s)s",
        {"interval_s": interval_s},
    )


def spreads(
    dsn: str,
    instrument: str,
    start: When,
    end: When,
    venue: str | None = None,
    exact: bool = False,
) -> pd.DataFrame:
    """Every change of the best bid or ask in the range, with spread and mid (NaN/None
    while a side is empty)."""
    return _query(dsn, "spreads", instrument, start, end, venue, exact)


def depth(
    dsn: str,
    instrument: str,
    start: When,
    end: When,
    venue: str | None = None,
    exact: bool = False,
) -> pd.DataFrame:
    """The periodic top-10 book snapshots in the range: prices and sizes per side as lists,
    best first."""
    return _query(dsn, "depth", instrument, start, end, venue, exact)
