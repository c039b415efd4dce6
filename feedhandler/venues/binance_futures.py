"""Binance futures: COIN-M (``dapi``, inverse contracts) and USD-M (``fapi``, linear).

The same combined streams, REST answers, trades and bookTicker comparison as
spot (``BinanceBase`` in binance.py); what differs is Binance's futures depth
rule and the instrument data.

Depth sync, as Binance documents it for both markets and run by the shared sync
engine: buffer the ``depthUpdate`` events, take a REST snapshot
(``/dapi/v1/depth`` or ``/fapi/v1/depth``, ``lastUpdateId``), drop events with
``u`` < lastUpdateId, the first applied event must have
``U`` <= lastUpdateId <= ``u``, and from then on each event's ``pu`` must equal
the previous event's ``u`` (update ids are shared by the market's symbols, so
``U`` is not the previous ``u`` + 1); anything else is a gap and a new snapshot.

Units come from each symbol's own precision fields of ``exchangeInfo``
(``pricePrecision``, ``quantityPrecision``; finer ``tickSize``/``stepSize``
decimals win), the order-entry filters stay in ``filters``. Quantities are
contracts on COIN-M (``contractSize`` USD each) and base units on USD-M. Symbols
keep Binance's names (``BTCUSD_PERP``, ``BTCUSD_210924``, ``BTCUSDT``); each gets its
canonical listing (hub.symbology): perpetuals ``BTC-USD-PERP`` (inverse, settled in
``marginAsset``) or ``BTC-USDT-PERP``, quarterlies ``BTC-USD-20210924`` from
``deliveryDate``.
"""

from __future__ import annotations

from typing import Any

from feedhandler.frames import MalformedFrame, as_list, as_str, count, field
from feedhandler.venues.base import decimals_unit
from feedhandler.venues.binance import BinanceBase, order_filters, precision
from feedhandler.venues.exact import decimals_of
from hub.decimals import Unit
from hub.symbology import Listing, SymbologyError, future, perp

COINM = "BINANCE_COINM"
USDM = "BINANCE_USDM"


class BinanceFuturesParser(BinanceBase):
    """One Binance futures market's streams and REST answers in, normalized events out."""

    inverse = False
    """COIN-M: contracts are worth ``contractSize`` of the quote currency, settled in coin."""

    def _prev(self, d: dict[str, Any]) -> int | None:
        return count(field(d, "pu"), "pu")

    def _chained(self, first: int, last: int, prev: int | None) -> int | None:
        super()._chained(first, last, prev)
        if prev is None:
            raise MalformedFrame("shape", "missing 'pu'")
        if prev >= first:
            raise MalformedFrame("inconsistent", f"previous update id {prev} not before {first}")
        return prev

    def _exchange_info(self, data: Any) -> None:
        found: list[tuple[str, Unit, Unit, str, str, Listing | None]] = []
        for s in as_list(field(data, "symbols"), "symbols"):
            raw = as_str(field(s, "symbol"), "symbol")
            tick_size, step_size = order_filters(s)
            price_decimals = max(
                precision(field(s, "pricePrecision"), "pricePrecision"),
                precision(decimals_of(tick_size, "tickSize"), "tickSize decimals"),
            )
            size_decimals = max(
                precision(field(s, "quantityPrecision"), "quantityPrecision"),
                precision(decimals_of(step_size, "stepSize"), "stepSize decimals"),
            )
            found.append(
                (
                    raw,
                    decimals_unit(price_decimals),
                    decimals_unit(size_decimals),
                    tick_size,
                    step_size,
                    self._listing(raw, s),
                )
            )
        for raw, tick, step, tick_size, step_size, listing in found:
            self.units[raw] = (tick, step)
            self.filters[raw] = (tick_size, step_size)
            self.names[raw] = raw
            if listing is not None:
                self.listings[raw] = listing

    def _listing(self, raw: str, s: Any) -> Listing | None:
        """The symbol's canonical listing; None for asset codes the symbology cannot name
        (the book is kept all the same)."""
        kind = as_str(field(s, "contractType"), "contractType")
        base = as_str(field(s, "baseAsset"), "baseAsset")
        quote = as_str(field(s, "quoteAsset"), "quoteAsset")
        settle = as_str(field(s, "marginAsset"), "marginAsset")
        delivery = count(field(s, "deliveryDate"), "deliveryDate")
        size = str(count(field(s, "contractSize"), "contractSize")) if self.inverse else "1"
        terms: dict[str, Any] = {"settle": settle, "contract_size": size, "inverse": self.inverse}
        try:
            if kind.startswith("PERPETUAL"):  # also "PERPETUAL DELIVERING" (being delisted)
                return perp(self.venue, raw, base, quote, **terms)
            return future(self.venue, raw, base, quote, delivery, **terms)
        except SymbologyError:
            return None


class CoinMParser(BinanceFuturesParser):
    """Binance COIN-M futures (``dstream``/``dapi``): inverse perpetuals and quarterlies."""

    venue = COINM
    api = "/dapi/v1"
    inverse = True


class UsdMParser(BinanceFuturesParser):
    """Binance USD-M futures (``fstream``/``fapi``): linear perpetuals and quarterlies."""

    venue = USDM
    api = "/fapi/v1"
