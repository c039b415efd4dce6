"""Instrument versions: the units and listing that applied to each stored row's time.

Stored prices and sizes are integers in the instrument's tick and lot, so a venue that
changes its tick size changes what every later integer means, and nothing earlier.
``instrument_versions`` (migration 010) keeps one row per version, keyed by
(venue, symbol, valid_from); the decimal views take each row's units from the version in
force at the row's time.

An Instrument message adds a version only when it is news and something changed:

- its ``announced_ns`` (the Kafka record's time; now when not given) is older than the
  latest version's: a re-delivery or a re-read of the topic, ignored;
- its units and listing equal the latest version's: a feed restart or a replay, ignored;
- else a new version applies from just after the last row the recorder stored for the
  stream (trades, top of book, snapshots); when no row was stored under the latest
  version yet, that version never applied and is replaced in place.

The first version applies from -infinity (to everything stored before). A listing learned
later (a canonical id where the versions had none) fills the versions that lacked it
rather than starting one: the asset was the same all along. ``instruments`` keeps the
current units and canonical id.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from hub.events import Instrument

TERMS = (
    "canonical",
    "kind",
    "base",
    "quote",
    "settle",
    "expiry",
    "strike",
    "option_right",
    "contract_size",
    "inverse",
)
"""The listing's columns in ``instrument_versions``, in Instrument's field order."""


@dataclass(frozen=True, slots=True)
class Announced:
    """An instrument with the time the feed published it (the Kafka record's time, ns)."""

    instrument: Instrument
    at_ns: int


def terms(inst: Instrument) -> tuple[Any, ...]:
    return (
        inst.canonical,
        inst.kind,
        inst.base,
        inst.quote,
        inst.settle,
        inst.expiry,
        inst.strike,
        inst.right,
        inst.contract_size,
        inst.inverse,
    )


def latest_each(items: Iterable[Instrument | Announced], now_ns: int) -> list[Announced]:
    """The newest announcement per (venue, symbol) of a batch (an earlier one in the same
    batch covers no row the recorder could place), in first-seen order."""
    out: dict[tuple[str, str], Announced] = {}
    for item in items:
        a = item if isinstance(item, Announced) else Announced(item, now_ns)
        key = (a.instrument.venue, a.instrument.symbol)
        kept = out.get(key)
        if kept is None or a.at_ns >= kept.at_ns:
            out[key] = a
    return list(out.values())


COLUMNS = ("tick_size", "lot_size", *TERMS, "announced_ns")
TYPES = ("text",) * (len(TERMS) - 1) + ("boolean", "bigint")
"""The SQL types of the columns after the two sizes."""

PUT = f"""
WITH last_row AS (
    SELECT greatest((SELECT max(time) FROM trades WHERE venue = $1 AND symbol = $2),
                    (SELECT max(time) FROM top_of_book WHERE venue = $1 AND symbol = $2),
                    (SELECT max(time) FROM book_snapshots WHERE venue = $1 AND symbol = $2))
           AS t
), latest AS (
    SELECT max(valid_from) AS f FROM instrument_versions WHERE venue = $1 AND symbol = $2
)
INSERT INTO instrument_versions AS v (venue, symbol, valid_from, {", ".join(COLUMNS)})
SELECT $1, $2,
       CASE WHEN latest.f IS NULL THEN '-infinity'::timestamptz
            WHEN last_row.t IS NULL OR last_row.t < latest.f THEN latest.f
            ELSE last_row.t + interval '1 microsecond' END,
       $3::numeric, $4::numeric, {", ".join(f"${i}::{t}" for i, t in enumerate(TYPES, 5))}
FROM last_row, latest
ON CONFLICT (venue, symbol, valid_from) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS)}
"""
"""Store a new version: the first from -infinity; a later one from just after the stream's
last stored row (its event time + 1 µs), or in place of the latest when no row was stored
under it (a version that never applied)."""

FILL_LISTING = (
    "UPDATE instrument_versions SET "
    + ", ".join(f"{c} = ${i}" for i, c in enumerate(TERMS, 3))
    + " WHERE venue = $1 AND symbol = $2 AND canonical = ''"
)
"""Give the versions stored without a canonical listing the one now learned."""

LATEST = (
    f"SELECT {', '.join(COLUMNS)} FROM instrument_versions "
    "WHERE venue = $1 AND symbol = $2 ORDER BY valid_from DESC LIMIT 1"
)

CURRENT = (
    "INSERT INTO instruments (venue, symbol, tick_size, lot_size, canonical) "
    "VALUES ($1, $2, $3::numeric, $4::numeric, $5) ON CONFLICT (venue, symbol) DO UPDATE "
    "SET tick_size = EXCLUDED.tick_size, lot_size = EXCLUDED.lot_size, "
    "canonical = EXCLUDED.canonical, updated_at = now()"
)


async def record(conn: asyncpg.Connection, items: Iterable[Instrument | Announced]) -> int:
    """Store the batch's instruments' versions and current units (inside the caller's
    transaction); return how many versions were added or replaced."""
    changed = 0
    for a in latest_each(items, time.time_ns()):
        if await _record_one(conn, a):
            changed += 1
    return changed


async def _record_one(conn: asyncpg.Connection, a: Announced) -> bool:
    inst = a.instrument
    listing = terms(inst)
    if inst.canonical:
        await conn.execute(FILL_LISTING, inst.venue, inst.symbol, *listing)
    latest = await conn.fetchrow(LATEST, inst.venue, inst.symbol)
    if latest is not None and a.at_ns < latest["announced_ns"]:
        return False  # older than what is stored: re-delivered or re-read
    await conn.execute(
        CURRENT, inst.venue, inst.symbol, inst.tick_size, inst.lot_size, inst.canonical
    )
    if latest is not None:
        stored = tuple(latest[c] for c in COLUMNS[:-1])
        if stored == (Decimal(inst.tick_size), Decimal(inst.lot_size), *listing):
            return False  # the same units and listing again (a restart, a replay)
    await conn.execute(
        PUT, inst.venue, inst.symbol, inst.tick_size, inst.lot_size, *listing, a.at_ns
    )
    return True
