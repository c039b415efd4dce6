"""Replay of the venue's journal or Kafka log at start-up, where a poisoned record is
refused instead of crashing the venue again on every restart.

Each record goes through ``TradingVenue.replay``, which re-checks it by today's shape
and int64 rules before applying it. A refused record is logged at error level with its
source, its position and why (one JSON line an operator can search for:
``"journaled command refused on replay"``), counted in
``hub_orders_replay_refused_total{reason}``, and skipped; the venue starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import Counter

if TYPE_CHECKING:
    from trading.venue import Outcome, TradingVenue

log = logging.getLogger("hub.orders")
REFUSED = Counter(
    "hub_orders_replay_refused_total",
    "Journaled commands refused on replay by today's checks (and skipped)",
    ["reason"],
)
SHOWN = 300
"""Characters of a refused record put in its log line."""


def replayed(
    venue: TradingVenue, commands: Iterable[dict[str, Any]], source: str
) -> Iterator[Outcome]:
    """The outcome of every command of ``source`` in order; refused ones are reported by
    ``refused`` and give an outcome with nothing, or only a refused order's report."""
    for position, cmd in enumerate(commands, start=1):
        outcome, refusal = venue.replay(cmd)
        if refusal is not None:
            refused(source, position, refusal.reason, refusal.text, cmd)
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
