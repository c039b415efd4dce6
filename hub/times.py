"""Venue timestamps to the hub's int64 nanoseconds, exactly (never through float)."""

from __future__ import annotations

from datetime import datetime

from hub.decimals import parse_decimal


def seconds_ns(text: str) -> int:
    """Decimal seconds (``"1693415331.627599"``) to ns; digits past 1 ns are dropped."""
    mantissa, exp = parse_decimal(text)
    return int(mantissa * 10 ** (9 - exp)) if exp <= 9 else int(mantissa // 10 ** (exp - 9))


def iso_ns(stamp: str | None) -> int:
    """A UTC ISO-8601 stamp (``2023-07-30T15:29:58.343415Z``, ``T`` or space) to ns; 0 if empty."""
    if not stamp:
        return 0
    whole, _, frac = stamp.rstrip("Z").partition(".")
    seconds = int(datetime.fromisoformat(whole.replace(" ", "T") + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int((frac + "000000000")[:9])
