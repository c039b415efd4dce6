"""One symbology: each instrument's canonical id beside the venue's own symbol.

A venue calls the same thing ``XBT/USD``, ``BTCUSD``, ``tBTCUSD`` or ``BTC-USD``; the hub
names it once, so a subscription, a consolidated book or an analyst's query can say "the
same asset on every venue":

============  ===================================  ==============================
kind          canonical id                         example
============  ===================================  ==============================
spot          ``BASE-QUOTE``                       ``BTC-USD``
perpetual     ``BASE-QUOTE-PERP``                  ``BTC-USDT-PERP``
future        ``BASE-QUOTE-YYYYMMDD``              ``BTC-USD-20220527``
option        ``BASE-QUOTE-YYYYMMDD-STRIKE-C|P``   ``BTC-USD-20220527-40000-C``
============  ===================================  ==============================

``QUOTE`` is the currency prices are quoted in (an inverse contract quoted in USD and
settled in BTC is ``BTC-USD-PERP``, its ``settle`` is ``BTC``); assets go through
``ALIASES`` (``XBT`` → ``BTC``). Contract size, settlement currency and inverse-ness are in
the ``Listing``, not the id: two venues' BTC-USD perpetuals are the same market exposure
with different contract terms. One rule for contract size: ``contract_size`` is in ``quote``
units exactly when ``inverse`` is set (the size is fixed in the quote currency) and in
``base`` units otherwise; options are always sized in ``base`` and never inverse.

Venue parsers build a ``Listing`` per native symbol with ``spot``/``perp``/``future``/
``option`` when they learn the instrument (REST metadata or the symbol itself) and keep it
in ``ParserBase.listings``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from hub.events import Instrument

SPOT, PERP, FUTURE, OPTION = "spot", "perp", "future", "option"
EQUITY = "equity"
"""The kind of an equity file source's ticker (ITCH, LOBSTER, Databento): its canonical id
is the ticker itself (``AAPL``), outside the BASE-QUOTE grammar."""
KINDS = (SPOT, PERP, FUTURE, OPTION)
CALL, PUT = "C", "P"

ALIASES: dict[str, str] = {
    "XBT": "BTC",  # Kraken, BitMEX, Kraken Futures
    "XDG": "DOGE",  # Kraken
    "BCC": "BCH",  # old Binance/Bitfinex code
    "UST": "USDT",  # Bitfinex's code for Tether
}
"""Venue asset codes that name another asset's standard code."""

_ASSET = re.compile(r"^[A-Z0-9]{1,20}$")
_CANONICAL = re.compile(
    r"^(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)"
    r"(?:-(?P<perp>PERP)|-(?P<expiry>\d{8})(?:-(?P<strike>\d+(?:\.\d+)?)-(?P<right>[CP]))?)?$"
)


class SymbologyError(ValueError):
    """An asset, expiry, strike or canonical id that does not parse (the text is named)."""


@dataclass(frozen=True, slots=True)
class Listing:
    """One venue's instrument under its canonical id."""

    venue: str
    native: str
    """The symbol as the venue spells it (what its feed and the hub's streams use)."""
    canonical: str
    kind: str
    base: str
    quote: str
    settle: str = ""
    """Settlement currency of a derivative ("" for spot)."""
    expiry: str = ""
    """``YYYYMMDD`` of a future or option ("" otherwise)."""
    strike: str = ""
    right: str = ""
    """``C`` or ``P`` for an option."""
    contract_size: str = ""
    """What one contract is worth: units of ``quote`` when ``inverse``, else units of
    ``base``; "" for spot and for a size in neither (a BitMEX quanto contract). BitMEX
    XBTUSD is ``"1"`` (USD, inverse), a Deribit BTC option ``"1"`` (BTC, not inverse)."""
    inverse: bool = False
    """The contract's size is fixed in ``quote`` (its value in the settlement coin moves
    with the price): BitMEX XBTUSD, Binance COIN-M, Kraken ``PI_``/``FI_``, Deribit coin
    futures. Options are sized in the underlying, so never inverse; a coin-settled option
    shows that in ``settle`` (``settle == base``)."""


def asset(code: str) -> str:
    """The standard code of a venue's asset code (upper case, aliases resolved)."""
    up = code.strip().upper()
    if not _ASSET.match(up):
        raise SymbologyError(f"asset code {code!r} is not 1-20 letters or digits")
    return ALIASES.get(up, up)


def expiry_date(value: str | int | dt.date) -> str:
    """``YYYYMMDD`` from a date, a ``YYYYMMDD``/``YYMMDD`` string or epoch milliseconds."""
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    if isinstance(value, int):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC).strftime("%Y%m%d")
    text = value.strip()
    try:
        if re.fullmatch(r"\d{8}", text):
            return dt.datetime.strptime(text, "%Y%m%d").strftime("%Y%m%d")
        if re.fullmatch(r"\d{6}", text):
            return dt.datetime.strptime(text, "%y%m%d").strftime("%Y%m%d")
    except ValueError:
        pass
    raise SymbologyError(f"expiry {value!r} is not a date (YYYYMMDD, YYMMDD or epoch ms)")


def strike_text(value: str) -> str:
    """A strike as a plain decimal without trailing zeros (``"40000.0"`` → ``"40000"``)."""
    try:
        d = Decimal(value)
    except InvalidOperation:
        raise SymbologyError(f"strike {value!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise SymbologyError(f"strike {value!r} is not a positive number")
    return format(d.normalize(), "f")


def spot(venue: str, native: str, base: str, quote: str) -> Listing:
    b, q = asset(base), asset(quote)
    return Listing(venue, native, f"{b}-{q}", SPOT, b, q)


def perp(
    venue: str,
    native: str,
    base: str,
    quote: str,
    *,
    settle: str,
    contract_size: str = "1",
    inverse: bool = False,
) -> Listing:
    b, q = asset(base), asset(quote)
    return Listing(
        venue,
        native,
        f"{b}-{q}-PERP",
        PERP,
        b,
        q,
        settle=asset(settle),
        contract_size=contract_size,
        inverse=inverse,
    )


def future(
    venue: str,
    native: str,
    base: str,
    quote: str,
    expiry: str | int | dt.date,
    *,
    settle: str,
    contract_size: str = "1",
    inverse: bool = False,
) -> Listing:
    b, q, day = asset(base), asset(quote), expiry_date(expiry)
    return Listing(
        venue,
        native,
        f"{b}-{q}-{day}",
        FUTURE,
        b,
        q,
        settle=asset(settle),
        expiry=day,
        contract_size=contract_size,
        inverse=inverse,
    )


def option(
    venue: str,
    native: str,
    base: str,
    quote: str,
    expiry: str | int | dt.date,
    strike: str,
    right: str,
    *,
    settle: str,
    contract_size: str = "1",
    inverse: bool = False,
) -> Listing:
    b, q, day, k = asset(base), asset(quote), expiry_date(expiry), strike_text(strike)
    if inverse:
        raise SymbologyError(
            f"option {native!r}: options are sized in {b}, not inverse (see Listing.inverse)"
        )
    r = right.strip().upper()[:1]
    if r not in (CALL, PUT):
        raise SymbologyError(f"option right {right!r} is not call or put")
    return Listing(
        venue,
        native,
        f"{b}-{q}-{day}-{k}-{r}",
        OPTION,
        b,
        q,
        settle=asset(settle),
        expiry=day,
        strike=k,
        right=r,
        contract_size=contract_size,
        inverse=inverse,
    )


def parse(canonical: str) -> dict[str, str]:
    """The parts of a canonical id (``base``, ``quote``, ``kind``, and ``expiry``, ``strike``,
    ``right`` where the kind has them); raises SymbologyError naming the text."""
    m = _CANONICAL.match(canonical.strip().upper())
    if m is None:
        raise SymbologyError(
            f"{canonical!r} is not a canonical id (BASE-QUOTE, BASE-QUOTE-PERP, "
            "BASE-QUOTE-YYYYMMDD or BASE-QUOTE-YYYYMMDD-STRIKE-C|P)"
        )
    parts = {"base": m["base"], "quote": m["quote"]}
    if m["perp"]:
        parts["kind"] = PERP
    elif m["strike"]:
        parts.update(kind=OPTION, expiry=m["expiry"], strike=m["strike"], right=m["right"])
    elif m["expiry"]:
        parts.update(kind=FUTURE, expiry=m["expiry"])
    else:
        parts["kind"] = SPOT
    return parts


def listed(instrument: Instrument, listing: Listing | None) -> Instrument:
    """The instrument event carrying ``listing``'s canonical id and contract terms (as it
    is when there is no listing)."""
    if listing is None:
        return instrument
    return dataclasses.replace(
        instrument,
        canonical=listing.canonical,
        kind=listing.kind,
        base=listing.base,
        quote=listing.quote,
        settle=listing.settle,
        expiry=listing.expiry,
        strike=listing.strike,
        right=listing.right,
        contract_size=listing.contract_size,
        inverse=listing.inverse,
    )


def equity(instrument: Instrument) -> Instrument:
    """An equity file source's instrument: the ticker is its canonical id."""
    return dataclasses.replace(instrument, canonical=instrument.symbol.upper(), kind=EQUITY)
