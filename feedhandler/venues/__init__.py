"""The live venues the hub connects to: parser, default endpoints and connection rules."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from feedhandler.venues.base import ParserBase
from feedhandler.venues.binance import BinanceParser
from feedhandler.venues.binance_futures import CoinMParser, UsdMParser
from feedhandler.venues.bitfinex import BitfinexParser
from feedhandler.venues.bitget import BitgetParser
from feedhandler.venues.bitmex import BitmexParser
from feedhandler.venues.bitstamp import BitstampParser
from feedhandler.venues.bybit import BybitParser
from feedhandler.venues.bybit_v5 import BybitV5Parser
from feedhandler.venues.coinbase import CoinbaseParser
from feedhandler.venues.coinbase_auth import CoinbaseCredentials
from feedhandler.venues.coinbase_l3 import CoinbaseL3Parser
from feedhandler.venues.cryptocom import CryptocomParser
from feedhandler.venues.deribit import DeribitParser
from feedhandler.venues.gateio import GateioParser
from feedhandler.venues.gemini import GeminiParser
from feedhandler.venues.huobi import HuobiCoinSwapParser, HuobiSpotParser
from feedhandler.venues.kraken import KrakenParser
from feedhandler.venues.kraken_futures import KrakenFuturesParser
from feedhandler.venues.kucoin import KucoinParser
from feedhandler.venues.okx import OkxParser
from feedhandler.venues.phemex import PhemexParser


@dataclass(frozen=True)
class VenueSpec:
    name: str
    parser: Callable[[], ParserBase]
    url: str
    """Default WebSocket endpoint."""
    rest: str
    """Default REST base URL ("" when the venue needs none)."""
    lifetime: float = 0.0
    """Planned reconnect after this many seconds (the venue ends connections later)."""
    streams_in_url: bool = False
    """Binance: the subscription is the URL's ``streams`` list, not a message."""

    def ws_url(self, base: str, symbols: list[str]) -> str:
        if self.streams_in_url:
            return base.rstrip("/") + BinanceParser.stream_url(
                [s.replace("-", "").replace("/", "") for s in symbols]
            )
        return base


def _coinbase_credentials() -> CoinbaseCredentials | None:
    return CoinbaseCredentials.from_env(os.environ)


VENUES: dict[str, VenueSpec] = {
    "kraken": VenueSpec("kraken", KrakenParser, "wss://ws.kraken.com/v2", ""),
    "binance": VenueSpec(
        "binance",
        BinanceParser,
        "wss://stream.binance.com:9443",
        "https://api.binance.com",
        lifetime=23.5 * 3600,  # Binance disconnects every connection at 24 h
        streams_in_url=True,
    ),
    "coinbase": VenueSpec(
        "coinbase",
        CoinbaseParser,
        "wss://advanced-trade-ws.coinbase.com",
        "https://api.coinbase.com",
    ),
    "coinbase-exchange": VenueSpec(
        "coinbase-exchange",
        lambda: CoinbaseParser("exchange", _coinbase_credentials()),
        "wss://ws-feed.exchange.coinbase.com",
        "https://api.exchange.coinbase.com",
    ),
    "coinbase-l3": VenueSpec(
        "coinbase-l3",
        lambda: CoinbaseL3Parser(_coinbase_credentials()),
        "wss://ws-feed.exchange.coinbase.com",
        "https://api.exchange.coinbase.com",
    ),
    "bybit-v2": VenueSpec(
        "bybit-v2",
        BybitParser,
        "wss://stream.bybit.com/realtime_public",  # v2 USDT perpetuals (legacy API)
        "https://api.bybit.com",
    ),
    "bitmex": VenueSpec(
        "bitmex", BitmexParser, "wss://ws.bitmex.com/realtime", "https://www.bitmex.com"
    ),
    "bybit": VenueSpec(
        "bybit",
        BybitV5Parser,
        "wss://stream.bybit.com/v5/public/linear",  # v5 USDT/USDC perpetuals and futures
        "https://api.bybit.com",
    ),
    "okx": VenueSpec("okx", OkxParser, "wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com"),
    "bitget": VenueSpec(
        "bitget", BitgetParser, "wss://ws.bitget.com/spot/v1/stream", "https://api.bitget.com"
    ),
    "binance-coinm": VenueSpec(
        "binance-coinm",
        CoinMParser,
        "wss://dstream.binance.com",
        "https://dapi.binance.com",
        lifetime=23.5 * 3600,
        streams_in_url=True,
    ),
    "binance-usdm": VenueSpec(
        "binance-usdm",
        UsdMParser,
        "wss://fstream.binance.com",
        "https://fapi.binance.com",
        lifetime=23.5 * 3600,
        streams_in_url=True,
    ),
    "kraken-futures": VenueSpec(
        "kraken-futures",
        KrakenFuturesParser,
        "wss://futures.kraken.com/ws/v1",
        "https://futures.kraken.com",
    ),
    "deribit": VenueSpec(
        "deribit", DeribitParser, "wss://www.deribit.com/ws/api/v2", "https://www.deribit.com"
    ),
    "bitfinex": VenueSpec(
        "bitfinex",
        BitfinexParser,
        "wss://api-pub.bitfinex.com/ws/2",
        "https://api-pub.bitfinex.com",
    ),
    "bitstamp": VenueSpec(
        "bitstamp", BitstampParser, "wss://ws.bitstamp.net", "https://www.bitstamp.net"
    ),
    "gemini": VenueSpec(
        "gemini", GeminiParser, "wss://api.gemini.com/v2/marketdata", "https://api.gemini.com"
    ),
    "huobi": VenueSpec("huobi", HuobiSpotParser, "wss://api.huobi.pro/ws", "https://api.huobi.pro"),
    "huobi-coin-swap": VenueSpec(
        "huobi-coin-swap",
        HuobiCoinSwapParser,
        "wss://api.hbdm.com/swap-ws",
        "https://api.hbdm.com",
    ),
    "cryptocom": VenueSpec(
        "cryptocom", CryptocomParser, "wss://stream.crypto.com/v2/market", "https://api.crypto.com"
    ),
    "phemex": VenueSpec("phemex", PhemexParser, "wss://phemex.com/ws", "https://api.phemex.com"),
    "kucoin": VenueSpec(
        "kucoin",
        KucoinParser,
        "wss://ws-api-spot.kucoin.com/",  # the runner connects where bullet-public says
        "https://api.kucoin.com",
    ),
    "gateio": VenueSpec(
        "gateio", GateioParser, "wss://api.gateio.ws/ws/v4/", "https://api.gateio.ws"
    ),
}
