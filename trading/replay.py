"""Replay of the venue's journal or Kafka log at start-up, where a poisoned record is
refused instead of crashing the venue again on every restart.

Each record goes through ``TradingVenue.replay``, which decodes it (the journal's codec,
``trading/journal.py``) and re-checks it by today's int64 rules before applying it. A
refused record is logged at error level with its source, its position and why (one JSON
line an operator can search for: ``"journaled command refused on replay"``), counted in
``hub_orders_replay_refused_total{reason}``, and skipped; the venue starts.

A checkpoint is read the same way (``restore``): an order of an engine's state that no
int64 holds (a field, or its level's size with it) is left out of the book and refused
like a command, and a trader's such order is reported cancelled (``replay_refused``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

from hub.ops import metrics
from orderbook_core.engine_types import ORDER_FIELDS, VISIBLE
from trading.checks import INT64_MAX

METRICS = metrics("orders")

if TYPE_CHECKING:
    from trading.venue import Outcome, TradingVenue

log = logging.getLogger("hub.orders")
REFUSED = Counter(
    "hub_orders_replay_refused_total",
    "Journaled commands refused on replay by today's checks (and skipped)",
    ["reason"],
    registry=METRICS,
)
SHOWN = 300
"""Characters of a refused record put in its log line."""


def replayed(venue: TradingVenue, records: Iterable[Any], source: str) -> Iterator[Outcome]:
    """The outcome of every record of ``source`` in order; refused ones are reported by
    ``refused`` and give an outcome with nothing, or only a refused order's report."""
    for position, record in enumerate(records, start=1):
        outcome, refusal = venue.replay(record)
        if refusal is not None:
            refused(source, position, refusal.reason, refusal.text, record)
        yield outcome


def refused(source: str, position: int, reason: str, text: str, record: Any) -> None:
    """Log and count one record of the journal or log that is not replayed."""
    REFUSED.labels(reason).inc()
    if isinstance(record, bytes):
        shown = record[:SHOWN].decode(errors="replace")
    else:
        try:
            shown = orjson.dumps(record, default=repr).decode()[:SHOWN]
        except TypeError:  # an int past 64 bits, a non-string key
            shown = repr(record)[:SHOWN]
    log.error(
        "journaled command refused on replay: %s",
        text,
        extra={"source": source, "position": position, "reason": reason, "record": shown},
    )


def restore(venue: TradingVenue, state: Mapping[str, Any], source: str) -> None:
    """Restore a checkpoint into ``venue``, leaving out (and refusing, as above) every
    engine order no int64 holds: one with a field past int64, or one that would take its
    level's size past it (the later arrivals of that level go first)."""
    exchanges = dict(state["exchanges"])
    dropped: list[tuple[str, list[Any]]] = []
    for symbol, saved in exchanges.items():
        engine = dict(saved["engine"])
        book = []
        for side, price, orders in engine["book"]:
            kept, total = [], 0
            for fields in orders:
                if _fits(fields) and total + fields[VISIBLE] <= INT64_MAX:
                    kept.append(fields)
                    total += fields[VISIBLE]
                else:
                    dropped.append((symbol, fields))
            if kept:
                book.append([side, price, kept])
        stops = []
        for fields in engine["stops"]:
            if _fits(fields):
                stops.append(fields)
            else:
                dropped.append((symbol, fields))
        exchanges[symbol] = {**saved, "engine": {**engine, "book": book, "stops": stops}}
    venue.restore({**state, "exchanges": exchanges})
    for symbol, fields in dropped:
        refused(source, 0, "size_limit", f"{symbol} order {fields[0]!r} does not fit int64", fields)
        if type(fields[0]) is int:
            venue.refuse_order(fields[0], venue.exchanges[symbol].last_ts)


def _fits(fields: Any) -> bool:
    """Whether an engine order's saved fields are all int64 (and its shown size not < 0)."""
    return (
        isinstance(fields, list)
        and len(fields) == len(ORDER_FIELDS)
        and all(type(f) is int and -INT64_MAX - 1 <= f <= INT64_MAX for f in fields)
        and fields[VISIBLE] >= 0
    )
