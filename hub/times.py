"""Venue timestamps to the hub's int64 nanoseconds, exactly (never through float).

The plain forms venues send are read by the book core's compiled readers
(``orderbook_core.iso_to_ns``, ``UnitScale``); anything else by the exact
readers here (``iso_ns_exact``, ``seconds_ns_exact``), which decide every
refusal and every unusual form.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

from hub.decimals import parse_decimal
from orderbook_core import UnitScale, iso_to_ns

plain_ns = UnitScale(1, 9).units
"""Plain decimal seconds as whole ns, or None (``seconds_ns_exact`` must answer)."""


def seconds_ns(text: str) -> int:
    """Decimal seconds (``"1693415331.627599"``) to ns; digits past 1 ns are dropped."""
    ns = plain_ns(text)
    return seconds_ns_exact(text) if ns is None else ns


def seconds_ns_exact(text: str) -> int:
    """``seconds_ns`` by regular expression and Python ints (the reference)."""
    mantissa, exp = parse_decimal(text)
    return int(mantissa * 10 ** (9 - exp)) if exp <= 9 else int(mantissa // 10 ** (exp - 9))


def iso_ns(stamp: str | None) -> int:
    """A UTC ISO-8601 stamp (``2023-07-30T15:29:58.343415Z``, ``T`` or space) to ns; 0 if empty."""
    ns = iso_to_ns(stamp)
    return iso_ns_exact(stamp) if ns is None else ns


def iso_ns_exact(stamp: str | None) -> int:
    """``iso_ns`` through ``datetime.fromisoformat`` (the reference)."""
    if not stamp:
        return 0
    whole, _, frac = stamp.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole.replace(" ", "T") + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])


NASDAQ_TZ = "America/New_York"


def trading_day_from_name(name: str) -> date | None:
    """The trading day a US equity file's name gives: ``..._YYYY-MM-DD_...`` (LOBSTER),
    or NASDAQ's ``MMDDYYYY.NASDAQ_ITCH50`` (ITCH); None when the name has neither."""
    m = re.search(r"(?:^|[^0-9])(\d{4})-(\d{2})-(\d{2})(?:[^0-9]|$)", name)
    if m is not None:
        year, month, day = (int(g) for g in m.groups())
    else:
        m = re.match(r"(\d{2})(\d{2})(\d{4})\.", name)
        if m is None:
            return None
        month, day, year = (int(g) for g in m.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


def exchange_midnight_ns(day: date | None, tz: str = NASDAQ_TZ) -> int:
    """Epoch ns of midnight of ``day`` in the exchange's time zone (0 without a day). ITCH
    and LOBSTER stamp events as time since that local midnight."""
    if day is None:
        return 0
    midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    return int(midnight.timestamp()) * 1_000_000_000
