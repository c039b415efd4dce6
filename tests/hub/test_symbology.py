"""The canonical ids: one spelling per instrument, aliases resolved, bad parts named."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from hub.symbology import (
    FUTURE,
    OPTION,
    PERP,
    SPOT,
    SymbologyError,
    asset,
    future,
    option,
    parse,
    perp,
    spot,
)


def test_spot_resolves_aliases_and_case() -> None:
    listing = spot("KRAKEN", "XBT/USD", "xbt", "usd")
    assert (listing.canonical, listing.kind, listing.base, listing.quote) == (
        "BTC-USD",
        SPOT,
        "BTC",
        "USD",
    )
    assert listing.native == "XBT/USD"
    assert asset("XDG") == "DOGE"


def test_derivative_ids_carry_kind_and_expiry() -> None:
    p = perp("BITMEX", "XBTUSD", "XBT", "USD", settle="XBT", contract_size="1", inverse=True)
    assert (p.canonical, p.kind, p.settle, p.inverse) == ("BTC-USD-PERP", PERP, "BTC", True)
    f = future("OKX", "BTC-USD-220527", "BTC", "USD", "220527", settle="BTC", contract_size="100")
    assert (f.canonical, f.kind, f.expiry, f.contract_size) == (
        "BTC-USD-20220527",
        FUTURE,
        "20220527",
        "100",
    )
    ms = int(dt.datetime(2022, 5, 27, 8, tzinfo=dt.UTC).timestamp() * 1000)
    assert future("X", "n", "BTC", "USD", ms, settle="BTC").expiry == "20220527"
    o = option(
        "DERIBIT",
        "BTC-27MAY22-40000-C",
        "BTC",
        "USD",
        dt.date(2022, 5, 27),
        "40000.0",
        "call",
        settle="BTC",
    )
    assert (o.canonical, o.kind, o.strike, o.right) == (
        "BTC-USD-20220527-40000-C",
        OPTION,
        "40000",
        "C",
    )


def test_parse_round_trips_every_kind() -> None:
    assert parse("btc-usd") == {"base": "BTC", "quote": "USD", "kind": SPOT}
    assert parse("BTC-USDT-PERP")["kind"] == PERP
    assert parse("BTC-USD-20220527") == {
        "base": "BTC",
        "quote": "USD",
        "kind": FUTURE,
        "expiry": "20220527",
    }
    assert parse("BTC-USD-20220527-0.5-P")["strike"] == "0.5"


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda: asset("BTC/USD"), "'BTC/USD'"),
        (lambda: future("X", "n", "BTC", "USD", "2022-13-01", settle="BTC"), "'2022-13-01'"),
        (lambda: future("X", "n", "BTC", "USD", "221301", settle="BTC"), "'221301'"),
        (lambda: option("X", "n", "BTC", "USD", "20220527", "-1", "C", settle="BTC"), "'-1'"),
        (lambda: option("X", "n", "BTC", "USD", "20220527", "1", "Q", settle="BTC"), "'Q'"),
        (lambda: parse("BTCUSD"), "'BTCUSD'"),
    ],
)
def test_bad_parts_are_named(call: Callable[[], object], named: str) -> None:
    with pytest.raises(SymbologyError, match=named):
        call()


def test_one_contract_size_rule_inverse_in_quote_options_in_base() -> None:
    """contract_size is in quote units exactly when inverse; options are sized in base."""
    xbtusd = perp("bitmex", "XBTUSD", "XBT", "USD", settle="XBT", inverse=True)
    assert (xbtusd.canonical, xbtusd.settle, xbtusd.contract_size) == ("BTC-USD-PERP", "BTC", "1")
    coin_call = option(
        "deribit", "BTC-27AUG21-40000-C", "BTC", "USD", "20210827", "40000", "C", settle="BTC"
    )
    assert (coin_call.inverse, coin_call.settle, coin_call.base) == (False, "BTC", "BTC")
    with pytest.raises(SymbologyError, match="sized in BTC, not inverse"):
        option("deribit", "X", "BTC", "USD", "20210827", "40000", "C", settle="BTC", inverse=True)


def test_instrument_event_carries_the_listing_and_old_payloads_decode() -> None:
    from hub.events import Instrument, decode, encode
    from hub.symbology import equity, listed

    xbtusd = perp("bitmex", "XBTUSD", "XBT", "USD", settle="XBT", inverse=True)
    inst = listed(Instrument("BITMEX", "XBTUSD", "0.5", "1"), xbtusd)
    back = decode(encode(inst))
    assert back == inst
    assert (back.id, back.kind, back.settle, back.contract_size, back.inverse) == (
        "BTC-USD-PERP",
        "perp",
        "BTC",
        "1",
        True,
    )
    old = decode(
        b'{"k":"instrument","venue":"X","symbol":"XBT/USD","tick_size":"0.1","lot_size":"1"}'
    )
    assert isinstance(old, Instrument)
    assert (old.canonical, old.kind, old.inverse, old.id) == ("", "", False, "XBT/USD")
    assert listed(old, None) is old
    aapl = equity(Instrument("ITCH", "aapl", "0.0001", "1"))
    assert (aapl.canonical, aapl.kind) == ("AAPL", "equity")
    with pytest.raises(ValueError, match="inverse"):
        decode(encode(inst).replace(b'"inverse":true', b'"inverse":"yes"'))
