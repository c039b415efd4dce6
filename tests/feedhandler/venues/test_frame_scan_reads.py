"""What each compiled frame scanner (orderbook_core._scan, _scan_numbers, _scan_rows)
reads, in units, and what it must decline to the parser's ordinary path: Binance depth
updates and bookTickers, Kraken Futures book messages, BitMEX book rows, Bitfinex
entries and snapshots, KuCoin level2, Deribit tickers, Coinbase Advanced Trade l2_data,
Crypto.com books, Huobi depth pushes, Gate.io book updates (the twin declines every
frame: the module skips on it)."""

from __future__ import annotations

import gc

import pytest

from feedhandler.venues.coinbase import DEFAULT_UNITS, SIDES
from hub.decimals import Unit
from hub.events import BUY, SELL
from orderbook_core import (
    IMPLEMENTATION,
    binance_frame,
    bitfinex_book,
    bitmex_book,
    coinbase_l2,
    cryptocom_book,
    deribit_frame,
    gateio_update,
    huobi_depth,
    kraken_futures_book,
    kucoin_frame,
)

pytestmark = pytest.mark.skipif(IMPLEMENTATION != "cython", reason="the twin declines every frame")
UNITS = {"BTCUSDT": (Unit("0.01"), Unit("0.00001"))}
DEPTH = (
    '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1634025600123,'
    '"s":"BTCUSDT","U":157,"u":160,"b":[["57000.10","0.50000"],["56999.00","0"]],'
    '"a":[["57001.00","1.25"]]}}'
)


def test_a_depth_update_is_read_in_units_bids_first() -> None:
    scan = binance_frame(DEPTH, UNITS)
    levels = ((0, 5700010, 50000), (0, 5699900, 0), (1, 5700100, 125000))
    assert scan == ("depth", "BTCUSDT", 157, 160, -1, 1634025600123 * 1_000_000, levels)
    bare = DEPTH[DEPTH.index('"data":') + 7 : -1].replace('"U":157', '"U":157,"pu":156')
    assert binance_frame(bare, UNITS) == ("depth", "BTCUSDT", 157, 160, 156, *scan[5:])


def test_a_book_ticker_is_read_with_or_without_its_event_type() -> None:
    spot = '{"u":400900217,"s":"BTCUSDT","b":"57000.10","B":"31.21","a":"57000.11","A":"40.66"}'
    want = ("ticker", "BTCUSDT", 400900217, (5700010, 3121000, 5700011, 4066000))
    assert binance_frame(spot, UNITS) == want
    futures = spot.replace("{", '{"e":"bookTicker","E":1,"T":2,"ps":"BTCUSD",', 1)
    assert binance_frame(futures, UNITS) == want


DECLINED = {
    "an escape in a string": DEPTH.replace("BTCUSDT", "BTC\\u0055SDT"),
    "a duplicate field": DEPTH.replace('"U":157', '"U":157,"U":158'),
    "a duplicate field after the levels": DEPTH.replace("]]}}", ']],"U":158}}'),
    "a number for a price": DEPTH.replace('"57001.00"', "57001.00"),
    "a price off the tick": DEPTH.replace("57001.00", "57001.001"),
    "a zero price": DEPTH.replace("57001.00", "0"),
    "a negative size": DEPTH.replace('"1.25"', '"-1.25"'),
    "a row of three": DEPTH.replace('"1.25"]', '"1.25","x"]'),
    "an id as text": DEPTH.replace('"U":157', '"U":"157"'),
    "an id past int64": DEPTH.replace('"u":160', f'"u":{2**63}'),
    "a negative id": DEPTH.replace('"U":157', '"U":-157'),
    "a time past int64 ns": DEPTH.replace("1634025600123", str(2**63 // 1_000_000 + 1)),
    "an exponent elsewhere": DEPTH.replace('"E":', '"X":1e400,"E":'),
    "a leading zero": DEPTH.replace('"U":157', '"U":0157'),
    "a trailing comma": DEPTH.replace('"0.50000"],', '"0.50000"],,'),
    "text after the object": DEPTH + "x",
    "an unknown symbol": DEPTH.replace("BTCUSDT", "ETHUSDT"),
    "data that is not an object": '{"stream":"x","data":[1]}',
    # a combined stream's fields are its data's: one beside the data is not
    "a field beside the data": DEPTH.replace('"U":157,', "").replace(
        '{"stream"', '{"U":157,"stream"'
    ),
    "a field after the data": DEPTH.replace('"U":157,', "")[:-1] + ',"U":157}',
    "a field both beside and in the data": DEPTH.replace('{"stream"', '{"U":157,"stream"'),
    "a data field in the data": DEPTH.replace('"U":157,', '"U":157,"data":{},'),
    "a trade": '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":1,"p":"1.00","q":"1","T":1,"m":true}',
    "another event": '{"e":"kline","s":"BTCUSDT"}',
    "non-ASCII text": DEPTH.replace("btcusdt@", "btcusdt\u00e9@"),
    "nesting past 16": DEPTH.replace('"E":', '"X":' + "[" * 17 + "]" * 17 + ',"E":'),
    "a control character": DEPTH.replace("btcusdt@", "btc\tusdt@"),
    "a truncated frame": DEPTH[:-3],
}


@pytest.mark.parametrize("why", sorted(DECLINED))
def test_what_the_scanner_does_not_read_exactly_it_declines(why: str) -> None:
    assert binance_frame(DECLINED[why], UNITS) is None


def test_space_and_unknown_fields_of_any_json_kind_are_read_past() -> None:
    spaced = (
        DEPTH.replace(",", " ,\n ")
        .replace(":", " : ")
        .replace('"data"', '"x":{"y":[null,true,-1.5]},"data"')
    )
    assert binance_frame(spaced, UNITS) == binance_frame(DEPTH, UNITS)


KRAKEN_BOOK = (
    '{"feed":"book","product_id":"PI_XBTUSD","side":"sell","seq":13501562,'
    '"price":32222.5,"qty":251.0,"timestamp":1626994927859}'
)


def test_a_kraken_futures_book_message_is_read_in_units() -> None:
    want = ("PI_XBTUSD", 13501562, 1626994927859 * 1_000_000, (1, 322225, 251))
    assert kraken_futures_book(KRAKEN_BOOK, {"PI_XBTUSD": (1, 0)}) == want
    bought = KRAKEN_BOOK.replace('"sell"', '"buy"').replace("251.0", "0")
    scan = kraken_futures_book(bought, {"PI_XBTUSD": (2, 0)})
    assert scan is not None and scan[3] == (0, 3222250, 0)


@pytest.mark.parametrize(
    "frame",
    [
        KRAKEN_BOOK.replace("251.0", "2.51e2"),
        KRAKEN_BOOK.replace("251.0", "251.5"),  # off the whole-contract grid
        KRAKEN_BOOK.replace("251.0", '"251.0"'),
        KRAKEN_BOOK.replace("32222.5", "0"),
        KRAKEN_BOOK.replace("32222.5", "-32222.5"),
        KRAKEN_BOOK.replace('"sell"', '"ask"'),
        KRAKEN_BOOK.replace('"book"', '"book_snapshot"'),
        KRAKEN_BOOK.replace("13501562", "13501562.0"),
        KRAKEN_BOOK.replace("PI_XBTUSD", "PI_ETHUSD"),
        KRAKEN_BOOK.replace("{", '{"event":"info",'),
        KRAKEN_BOOK.replace('"seq"', '"qty":1,"seq"'),
        KRAKEN_BOOK.replace("1626994927859", str(2**63 // 1_000_000 + 1)),
    ],
)
def test_a_kraken_futures_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert kraken_futures_book(frame, {"PI_XBTUSD": (1, 0)}) is None


BITMEX_UNITS = {"XBTUSD": (1, 0), "ETHUSD": (2, 0)}
BITMEX_ROWS = (
    '{"table":"orderBookL2","action":"insert","data":['
    '{"symbol":"XBTUSD","id":8796765400,"side":"Sell","size":21200,"price":32346},'
    '{"symbol":"ETHUSD","id":29699800000,"side":"Buy","size":7,"price":2001.05},'
    '{"symbol":"XBTUSD","id":8796794450,"side":"Buy","size":15900,"price":32055.5,'
    '"timestamp":"2021-07-22T22:36:11.685Z"}]}'
)


def test_bitmex_rows_are_read_per_symbol_in_order() -> None:
    stamp = 1626993371685 * 1_000_000
    read = bitmex_book(BITMEX_ROWS, BITMEX_UNITS)
    assert read == (
        "insert",
        {
            "XBTUSD": ([(8796765400, 1, 323460, 21200), (8796794450, 0, 320555, 15900)], stamp),
            "ETHUSD": ([(29699800000, 0, 200105, 7)], 0),
        },
    )
    assert not any(gc.is_tracked(r) for rows, _ts in read[1].values() for r in rows)
    exponent = BITMEX_ROWS.replace('"price":2001.05', '"price":2.00105e3')  # XRP's 7.899e-05
    assert bitmex_book(exponent, BITMEX_UNITS) == read
    update = '{"table":"orderBookL2_25","action":"update","data":[{"symbol":"XBTUSD",'
    update += '"id":8796765400,"side":"Sell","size":100}]}'
    assert bitmex_book(update, BITMEX_UNITS) == (
        "update",
        {"XBTUSD": ([(8796765400, 1, 0, 100)], 0)},
    )
    delete = update.replace('"update"', '"delete"').replace('"size":100', '"size":"x"')
    assert bitmex_book(delete, BITMEX_UNITS) == (
        "delete",
        {"XBTUSD": ([(8796765400, 1, 0, 0)], 0)},
    )
    partial = '{"table":"orderBookL2","action":"partial","keys":["symbol"],'
    partial += '"types":{"id":"long"},"filter":{"symbol":"ETHUSD"},"data":[]}'
    assert bitmex_book(partial, BITMEX_UNITS) == ("partial", {"ETHUSD": ([], 0)})


@pytest.mark.parametrize(
    "frame",
    [
        BITMEX_ROWS.replace('"insert"', '"replace"'),
        BITMEX_ROWS.replace('"orderBookL2"', '"trade"'),
        BITMEX_ROWS.replace("ETHUSD", "SOLUSD"),
        BITMEX_ROWS.replace('"price":2001.05', '"price":2001.055'),
        BITMEX_ROWS.replace('"price":2001.05', '"price":2.001055e3'),  # off the grid
        BITMEX_ROWS.replace('"price":2001.05', '"price":2.00105e30'),
        BITMEX_ROWS.replace('"price":2001.05', '"price":"2001.05"'),
        BITMEX_ROWS.replace(',"price":2001.05', ""),  # an insert must say its price
        BITMEX_ROWS.replace('"size":7', '"size":0'),
        BITMEX_ROWS.replace('"size":7', '"size":-7'),
        BITMEX_ROWS.replace('"Buy"', '"buy"'),
        BITMEX_ROWS.replace('"id":29699800000', '"id":"29699800000"'),
        BITMEX_ROWS.replace('"id":29699800000', f'"id":{2**63}'),
        BITMEX_ROWS.replace("2021-07-22T22:36:11.685Z", "yesterday"),
        BITMEX_ROWS.replace('"size":7', '"size":7,"size":8'),
        BITMEX_ROWS.replace('{"symbol":"ETHUSD"', '[{"symbol":"ETHUSD"').replace("}]}", "}]]}"),
        BITMEX_ROWS.replace('"data":[', '"data":[1,'),
        BITMEX_ROWS[:-2],
    ],
)
def test_a_bitmex_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert bitmex_book(frame, BITMEX_UNITS) is None


def test_a_bitfinex_entry_or_snapshot_is_read_in_units_with_its_texts() -> None:
    assert bitfinex_book("[225206,[0.068965,3,-12.5],19]") == (
        225206,
        19,
        [(1, 6896500, 1250000000, "0.068965:-12.5")],
        False,
    )
    deletion = (0, 21535000000000, 0, "215350:1")
    assert bitfinex_book(" [ 7 , [ 215350 , 0 , 1 ] , 8 ] ") == (7, 8, [deletion], False)
    snapshot = "[7,[[215350,0,1], [0.5,2,-3.25]],9]"
    ask = (1, 50000000, 325000000, "0.5:-3.25")
    assert bitfinex_book(snapshot) == (7, 9, [deletion, ask], True)
    deep = (0, 11, 2000000000, "1.1e-7:2E+1")  # the exponent moves the decimals
    assert bitfinex_book("[7,[[1.1e-7,1,2E+1],[0.5,2,-3.25]],9]") == (7, 9, [deep, ask], True)
    assert bitfinex_book("[7,[5e0,0,-1e-0],9]") == (7, 9, [(1, 500000000, 0, "5e0:-1e-0")], False)


@pytest.mark.parametrize(
    "frame",
    [
        "[1,[2,0,2],3]",  # a deletion's amount is 1 or -1
        "[1,[2e100,1,1],3]",  # an exponent past two digits
        "[1,[2e-9,1,1],3]",  # more than 8 decimals once the exponent moves them
        "[1,[2,1,1e11],3]",  # past 18 decimals the other way
        "[1,[2,1,1e],3]",
        "[1,[2,1,1e+],3]",
        "[1,[2,1,1]]",  # no sequence number
        '[1,"hb",3]',
        '[1,"cs",-12345,3]',
        "[1,[],3]",  # an empty snapshot
        "[1,[[2,1,1],],3]",
        "[1,[[2,1,1] [3,1,1]],3]",
        "[1,[[1,2,3,4]],3]",  # a trades snapshot
        "[1,[2,1,1],3]x",
        "[1,[-2,1,1],3]",
        "[1,[0,1,1],3]",
        "[1,[2,1,-0],3]",
        "[1,[2,1,0.000000001],3]",
        "[1,[2,1.0,1],3]",
        "[1,[2,-1,1],3]",
        '[1,["2",1,1],3]',
        f"[1,[2,1,1],{2**63}]",
        "[01,[2,1,1],3]",
        "[1,[2,1,1,4],3]",
    ],
)
def test_a_bitfinex_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert bitfinex_book(frame) is None


GATEIO_UNITS = {"HAI_ETH": (Unit("0.00000001"), Unit("0.001"))}
GATEIO_UPDATE = (
    '{"time":1619093532,"channel":"spot.order_book_update","event":"update","result":'
    '{"t":1619093532978,"e":"depthUpdate","E":1619093532,"s":"HAI_ETH","U":2691446,'
    '"u":2691447,"b":[["0.00010322","5360.209"],["0.00010276","0"]],"a":[["0.0001052","1.5"]]}}'
)


def test_a_gateio_book_update_is_read_in_units() -> None:
    levels = ((0, 10322, 5360209), (0, 10276, 0), (1, 10520, 1500))
    expected = ("HAI_ETH", 2691446, 2691447, 1619093532978 * 1_000_000, levels)
    assert gateio_update(GATEIO_UPDATE, GATEIO_UNITS) == expected
    spaced = GATEIO_UPDATE.replace(",", " , ").replace(":", " : ")
    assert gateio_update(spaced, GATEIO_UNITS) == expected


@pytest.mark.parametrize(
    "frame",
    [
        GATEIO_UPDATE.replace("spot.order_book_update", "spot.order_book"),
        GATEIO_UPDATE.replace('"event":"update"', '"event":"subscribe"'),
        GATEIO_UPDATE.replace("HAI_ETH", "BTC_USDT"),
        GATEIO_UPDATE.replace('"U":2691446', '"U":2691448'),  # U after u
        GATEIO_UPDATE.replace('"U":2691446', '"U":"2691446"'),
        GATEIO_UPDATE.replace('"t":1619093532978', '"t":1.6e12'),
        GATEIO_UPDATE.replace('"t":1619093532978,', ""),
        GATEIO_UPDATE.replace('"0.00010322"', '"0.000103225"'),  # off the tick
        GATEIO_UPDATE.replace('"0.00010322"', '"0"'),
        GATEIO_UPDATE.replace('["0.0001052","1.5"]', '["0.0001052","1.5",1]'),
        GATEIO_UPDATE.replace('"s":"HAI_ETH",', '"s":"HAI_ETH","s":"HAI_ETH",'),
        GATEIO_UPDATE.replace('"result":{', '"s":"HAI_ETH","result":{"x":{},').replace(
            '"s":"HAI_ETH","U"', '"U"'
        ),  # the pair beside the result, not in it
        GATEIO_UPDATE[:-1],
    ],
)
def test_a_gateio_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert gateio_update(frame, GATEIO_UNITS) is None


KUCOIN_UNITS = {"BTC-USDT": (Unit("0.1"), Unit("0.00000001"))}
LEVEL2 = (
    '{"data":{"sequenceStart":1613277183874,"symbol":"BTC-USDT","changes":{"asks":'
    '[["0","0","1613277183874"],["55010.5","0.15","1613277183875"]],"bids":'
    '[["55000.1","0",1613277183876]]},"sequenceEnd":"1613277183876"},'
    '"subject":"trade.l2update","topic":"/market/level2:BTC-USDT","type":"message"}'
)


def test_a_kucoin_level2_message_is_read_one_change_per_sequence() -> None:
    changes = (
        (0, 550001, 0, 1613277183876),
        (1, 0, 0, 1613277183874),  # a sequence-only change: its size is not read
        (1, 550105, 15000000, 1613277183875),
    )
    want = ("level2", "BTC-USDT", 1613277183874, 1613277183876, changes)
    assert kucoin_frame(LEVEL2, KUCOIN_UNITS) == want
    unread = LEVEL2.replace('["0","0",', '["0",{"x":1},')
    assert kucoin_frame(unread, KUCOIN_UNITS) == want


KUCOIN_TICKER = (
    '{"data":{"sequence":"1613277183873","bestAsk":"55010.5","size":"0.08","bestBidSize":'
    '"0.68148185","price":"55001.1","time":1619378326330,"bestAskSize":"4.5","bestBid":'
    '"55000.1"},"subject":"trade.ticker","topic":"/market/ticker:BTC-USDT","type":"message"}'
)


def test_a_kucoin_ticker_is_read_in_units_at_its_sequence() -> None:
    top = (550001, 68148185, 550105, 450000000)
    assert kucoin_frame(KUCOIN_TICKER, KUCOIN_UNITS) == ("ticker", "BTC-USDT", 1613277183873, top)
    bare = KUCOIN_TICKER.replace('"/market/ticker:BTC-USDT"', '"BTC-USDT"')  # rpartition: all of it
    assert kucoin_frame(bare, KUCOIN_UNITS) == ("ticker", "BTC-USDT", 1613277183873, top)


@pytest.mark.parametrize(
    "frame",
    [
        KUCOIN_TICKER.replace("ticker:BTC-USDT", "ticker:ETH-USDT"),
        KUCOIN_TICKER.replace("ticker:BTC-USDT", "ticker:BTC-USDT:"),  # after the last ":", nothing
        KUCOIN_TICKER.replace('"55000.1"', '"55000.15"'),
        KUCOIN_TICKER.replace('"55000.1"', "55000.1"),
        KUCOIN_TICKER.replace('"0.68148185"', '"0.681481851"'),
        KUCOIN_TICKER.replace('"sequence":"1613277183873"', '"sequence":"-1"'),
        KUCOIN_TICKER.replace('"sequence":"1613277183873",', ""),
        KUCOIN_TICKER.replace('"bestAskSize":"4.5",', ""),
        KUCOIN_TICKER.replace('"topic":"/market/ticker:BTC-USDT",', ""),
        KUCOIN_TICKER.replace('"topic":"/market/ticker:BTC-USDT"', '"topic":7'),
        KUCOIN_TICKER.replace('"data":{', '"data":{"bestBid":"1",'),  # a field twice
        KUCOIN_TICKER.replace('"type":"message"', '"type":"message","topic":"x"'),
    ],
)
def test_a_kucoin_ticker_not_read_exactly_is_declined(frame: str) -> None:
    assert kucoin_frame(frame, KUCOIN_UNITS) is None


@pytest.mark.parametrize(
    "frame",
    [
        LEVEL2.replace('"1613277183875"]', '"1613277183874"]'),  # a sequence twice
        LEVEL2.replace('"sequenceEnd":"1613277183876"', '"sequenceEnd":"1613277183877"'),
        LEVEL2.replace('"sequenceStart":1613277183874', '"sequenceStart":1613277183877'),
        LEVEL2.replace("1613277183876]", "1613277183879]"),  # outside the message
        LEVEL2.replace('"55010.5"', '"55010.55"'),
        LEVEL2.replace('"55010.5"', "55010.5"),
        LEVEL2.replace('"0.15"', '"-0.15"'),
        LEVEL2.replace('"0.15"', "0.15"),
        LEVEL2.replace("BTC-USDT", "ETH-USDT"),
        LEVEL2.replace('"trade.l2update"', '"trade.ticker"'),
        LEVEL2.replace('"message"', '"notice"'),
        LEVEL2.replace(',"bids":', ',"bidz":'),
        LEVEL2.replace('"0.15","1613277183875"]', '"0.15"]'),
        LEVEL2.replace('"1613277183875"', '"16132771838x5"'),
        LEVEL2.replace('"sequenceEnd":"1613277183876"', '"sequenceEnd":"1613277188000"'),
        LEVEL2[:-1],
        LEVEL2.replace("]]},", ']],"asks":[]},'),  # a field twice: the last counts
        LEVEL2.replace('},"subject"', ',"symbol":"BTC-USDT"},"subject"'),
        # each object's fields are its own: the data's beside it, the changes' in the data
        LEVEL2.replace('"symbol":"BTC-USDT",', "").replace(
            '{"data"', '{"symbol":"BTC-USDT","data"'
        ),
        LEVEL2.replace(',"bids":[["55000.1","0",1613277183876]]}', "}").replace(
            '"sequenceEnd"', '"bids":[["55000.1","0",1613277183876]],"sequenceEnd"'
        ),
    ],
)
def test_a_kucoin_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert kucoin_frame(frame, KUCOIN_UNITS) is None


TICKER = (
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-24SEP21-'
    '34000-P.raw","data":{"timestamp":1626993723632,"stats":{"volume":null,"high":0.25},'
    '"instrument_name":"BTC-24SEP21-34000-P","best_bid_price":0.1065,"best_bid_amount":'
    '12.5,"best_ask_price":0.111,"best_ask_amount":null,"greeks":{"vega":60.04}}}}'
)
TICKER_UNITS = {"BTC-24SEP21-34000-P": (4, 1)}


def test_a_deribit_ticker_is_read_in_units_null_as_zero() -> None:
    quote = (1065, 125, 1110, 0)
    want = ("ticker", "BTC-24SEP21-34000-P", 1626993723632 * 1_000_000, quote)
    assert deribit_frame(TICKER, TICKER_UNITS) == want
    absent = TICKER.replace('"best_ask_amount":null,', "")
    assert deribit_frame(absent, TICKER_UNITS) == want


@pytest.mark.parametrize(
    "frame",
    [
        TICKER.replace('"ticker.', '"book.'),
        TICKER.replace('"subscription"', '"heartbeat"'),
        TICKER.replace("34000-P.raw", "34000-Praw"),  # no interval: instrument ""
        TICKER.replace("ticker.BTC", "ticker.ETH"),
        TICKER.replace("0.1065", "0.10655"),
        TICKER.replace("0.1065", "-0.1065"),
        TICKER.replace("0.1065", '"0.1065"'),
        TICKER.replace("0.1065", "1.065e-1"),
        TICKER.replace("1626993723632", "1626993723632.0"),
        TICKER.replace("1626993723632", str(2**63 // 1_000_000 + 1)),
        TICKER.replace('"timestamp":1626993723632,', ""),
        # a data field anywhere but in params.data is not the data's
        TICKER.replace('"timestamp":1626993723632,', "").replace(
            '"2.0",', '"2.0","timestamp":1626993723632,'
        ),
        TICKER.replace('"timestamp":1626993723632,', "").replace(
            '"stats":{', '"stats":{"timestamp":1626993723632,'
        ),
        TICKER.replace('"channel":"ticker.BTC-24SEP21-34000-P.raw",', "").replace(
            '"stats":{', '"stats":{"channel":"ticker.BTC-24SEP21-34000-P.raw",'
        ),
        TICKER.replace('"best_bid_price":0.1065', '"best_bid_price":0.1065,"best_bid_price":1'),
        TICKER.replace(',"greeks"', ',"best_bid_price":1,"greeks"'),  # the last counts
        TICKER[:-1],
    ],
)
def test_a_deribit_ticker_not_read_exactly_is_declined(frame: str) -> None:
    assert deribit_frame(frame, TICKER_UNITS) is None


BOOK = (
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-24SEP21-34000-P.raw",'
    '"data":{"type":"change","timestamp":1626993723632,"prev_change_id":7,"instrument_name":'
    '"BTC-24SEP21-34000-P","change_id":8,"bids":[["new",0.1065,12.5],["delete",0.1,0.0]],'
    '"asks":[["change",0.111,3]]}}}'
)
BOOK_SNAPSHOT = BOOK.replace('"type":"change"', '"type":"snapshot"').replace(
    '"prev_change_id":7,', ""
)


def test_a_deribit_book_message_is_read_in_units_bids_first_a_deletion_zero() -> None:
    ts = 1626993723632 * 1_000_000
    levels = ((BUY, 1065, 125), (BUY, 1000, 0), (SELL, 1110, 30))
    name = "BTC-24SEP21-34000-P"
    want = ("book", name, False, 8, 7, ts, levels, b"ndc")
    assert deribit_frame(BOOK, TICKER_UNITS) == want
    no_asks = BOOK.replace('[["change",0.111,3]]', "[ ]")
    assert deribit_frame(no_asks, TICKER_UNITS) == (*want[:6], levels[:2], b"nd")
    snapshot = BOOK_SNAPSHOT.replace('"delete"', '"new"').replace('["change"', '["new"')
    assert deribit_frame(snapshot, TICKER_UNITS) == ("book", name, True, 8, 0, ts, levels, b"nnn")


@pytest.mark.parametrize(
    "frame",
    [
        BOOK_SNAPSHOT,  # a snapshot's entries are all "new"
        BOOK.replace('"change",', '"changes",'),
        BOOK.replace('"prev_change_id":7,', ""),
        BOOK.replace('"change_id":8', '"change_id":8.0'),
        BOOK.replace('"change_id":8', '"change_id":-8'),
        BOOK.replace('"prev_change_id":7', '"prev_change_id":"7"'),
        BOOK.replace('"timestamp":1626993723632', '"timestamp":1626993723632.5'),
        BOOK.replace('["new",0.1065', '["add",0.1065'),
        BOOK.replace('["new",0.1065,12.5]', '["new",0.1065,12.5,1]'),
        BOOK.replace('["new",0.1065,12.5]', '["new",0.1065]'),
        BOOK.replace('["new",0.1065,12.5]', '{"new":0.1065}'),
        BOOK.replace("0.1065", "0.10655"),  # off the price grid
        BOOK.replace("12.5", "12.55"),  # off the amount grid
        BOOK.replace("0.1065", "0"),
        BOOK.replace("0.1065", "-0.1065"),
        BOOK.replace("12.5", "-12.5"),
        BOOK.replace("12.5", "1.25e1"),
        BOOK.replace("12.5", '"12.5"'),
        BOOK.replace('"asks":[["change",0.111,3]]', '"asks":null'),
        BOOK.replace(',"asks":[["change",0.111,3]]', ""),
        BOOK.replace('"change_id":8,', '"change_id":8,"change_id":9,'),
        BOOK.replace("book.BTC", "book.ETH"),
        BOOK.replace("34000-P.raw", "34000-Praw"),
        BOOK.replace('"book.', '"books.'),
        BOOK[:-1],
    ],
)
def test_a_deribit_book_message_not_read_exactly_is_declined(frame: str) -> None:
    assert deribit_frame(frame, TICKER_UNITS) is None


L2 = (
    '{"channel":"l2_data","timestamp":"2026-08-09T21:06:04.390938113Z","sequence_num":681,'
    '"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"bid",'
    '"event_time":"2026-08-09T21:06:04.376791Z","price_level":"65075.33","new_quantity":'
    '"0.07682937"},{"side":"offer","event_time":"2026-08-09T21:06:04.5Z","price_level":'
    '"65084.43","new_quantity":"0"}]},{"type":"snapshot","product_id":"ETH-USD",'
    '"updates":[]}]}'
)


def test_a_coinbase_l2_data_frame_is_read_event_by_event() -> None:
    stamp = 1786309564500000000
    levels = ((0, 6507533000000, 7682937), (1, 6508443000000, 0))
    want = (681, [("BTC-USD", False, levels, stamp), ("ETH-USD", True, (), 0)])
    assert coinbase_l2(L2, {}, DEFAULT_UNITS, SIDES) == want


def test_a_coinbase_snapshots_repeated_sides_and_stamps_are_read_as_each_says() -> None:
    """A snapshot repeats each update's side and event_time: the scanner reads a side or
    a stamp only when it differs from the last update's, and must still follow every
    change of either."""

    def update(side: str, price: str, stamp: str) -> str:
        return (
            f'{{"side":"{side}","event_time":"2026-08-09T21:06:0{stamp}Z",'
            f'"price_level":"{price}","new_quantity":"1"}}'
        )

    rows = [("bid", "3", "1"), ("bid", "2", "1"), ("offer", "4", "1"), ("offer", "5", "3")]
    rows += [("bid", "1", "2"), ("ask", "6", "2"), ("offer", "7", "2")]
    frame = (
        '{"channel":"l2_data","timestamp":"2026-08-09T21:06:04Z","sequence_num":7,"events":'
        '[{"type":"snapshot","product_id":"BTC-USD","updates":['
        + ",".join(update(*r) for r in rows)
        + "]}]}"
    )
    assert [unit.text for unit in DEFAULT_UNITS] == ["0.00000001", "0.00000001"]
    levels = tuple((SIDES[side], int(price) * 10**8, 10**8) for side, price, _t in rows)
    stamp = 1786309563000000000  # the latest, 21:06:03, not the last update's
    assert coinbase_l2(frame, {}, DEFAULT_UNITS, SIDES) == (7, [("BTC-USD", True, levels, stamp)])
    later_bad = frame.replace("21:06:02Z", "21:06:0xZ", 1)  # a stamp after a repeat
    assert coinbase_l2(later_bad, {}, DEFAULT_UNITS, SIDES) is None


@pytest.mark.parametrize(
    "frame",
    [
        L2.replace('"l2_data"', '"ticker"'),
        L2.replace('"update"', '"delta"'),
        L2.replace('"bid"', '"buyer"'),
        L2.replace('"65075.33"', '"0"'),
        L2.replace('"0.07682937"', '"-1"'),
        L2.replace('"0.07682937"', "0.07682937"),
        L2.replace('"65075.33"', '"65075.333333333"'),
        L2.replace("2026-08-09T21:06:04.5Z", "today"),
        L2.replace('"sequence_num":681', '"sequence_num":-681'),
        L2.replace('"new_quantity":"0"}', '"new_quantity":"0","side":"bid"}'),
        L2.replace('"updates":[]}', '"updates":[],"type":"update"}'),
        L2[:-2],
    ],
)
def test_a_coinbase_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert coinbase_l2(frame, {}, DEFAULT_UNITS, SIDES) is None


BOOK150 = (
    '{"code":0,"method":"subscribe","result":{"instrument_name":"HNT_USDT","subscription":'
    '"book.HNT_USDT.150","channel":"book","depth":150,"data":[{"bids":[[45.334,0.386,1],'
    '[45.32,1259,2]],"asks":[[45.5,0.007,1]],"t":1637709519455}]}}'
)
BOOK_UNITS = {"HNT_USDT": (3, 3)}


def test_a_cryptocom_book_is_read_in_units() -> None:
    levels = ((0, 45334, 386), (0, 45320, 1259000), (1, 45500, 7))
    assert cryptocom_book(BOOK150, BOOK_UNITS) == ("HNT_USDT", [(1637709519455, levels)])


@pytest.mark.parametrize(
    "frame",
    [
        BOOK150.replace('"channel":"book"', '"channel":"trade"'),
        BOOK150.replace('"code":0', '"code":10001'),
        BOOK150.replace('"subscribe"', '"public/heartbeat"'),
        BOOK150.replace("HNT_USDT", "HNT_USDC"),
        BOOK150.replace("0.386", "0.3865"),
        BOOK150.replace("0.386", "0"),
        BOOK150.replace("0.386", "-0.386"),
        BOOK150.replace("0.386", '"0.386"'),
        BOOK150.replace("0.386", "3.86e-1"),
        BOOK150.replace("[45.5,0.007,1]", "[45.5]"),
        BOOK150.replace('"t":1637709519455', '"t":1637709519455.5'),
        BOOK150.replace('"t":1637709519455', f'"t":{2**63 // 1_000_000}'),
        BOOK150.replace('"t":1637709519455', '"t":1637709519455,"t":1'),
        BOOK150[:-1],
    ],
)
def test_a_cryptocom_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert cryptocom_book(frame, BOOK_UNITS) is None


SPOT_PUSH = (
    '{"ch":"market.btcusdt.depth.step0","ts":1618617600125,"tick":{"bids":[[61000.1,'
    '0.123456785],[60999,2]],"asks":[[61001.25,0.5]],"version":126802,"ts":1618617600120}}'
)
HUOBI_UNITS = {"btcusdt": (Unit("0.01"), Unit("0.00000001"))}


def test_a_huobi_push_is_read_in_units_sizes_rounded_half_up_where_asked() -> None:
    levels = ((0, 6100010, 12345679), (0, 6099900, 200000000), (1, 6100125, 50000000))
    want = ("btcusdt", 126802, 1618617600120 * 1_000_000, levels)
    assert huobi_depth(SPOT_PUSH, HUOBI_UNITS, "version", True) == want
    assert huobi_depth(SPOT_PUSH, HUOBI_UNITS, "version", False) is None  # off the lot
    swap = SPOT_PUSH.replace('"version"', '"mrid"').replace("0.123456785", "0.12345678")
    assert huobi_depth(swap, HUOBI_UNITS, "mrid", False) == (
        "btcusdt",
        126802,
        1618617600120 * 1_000_000,
        ((0, 6100010, 12345678), *levels[1:]),
    )
    written = SPOT_PUSH.replace("[60999,2]", "[6.0999E+4,200e-2]")  # as Java prints doubles
    assert huobi_depth(written, HUOBI_UNITS, "version", True) == want
    untimed = SPOT_PUSH.replace(',"ts":1618617600120', "")
    assert huobi_depth(untimed, HUOBI_UNITS, "version", True) == (*want[:2], 0, levels)
    tick_ch = SPOT_PUSH.replace('{"bids"', '{"ch":"market.ethusdt.depth.step1","bids"')
    assert huobi_depth(tick_ch, HUOBI_UNITS, "version", True) == want  # the tick's: not read


@pytest.mark.parametrize(
    "frame",
    [
        SPOT_PUSH.replace("depth.step0", "depth.step1"),
        SPOT_PUSH.replace("market.btcusdt", "market.ethusdt"),
        SPOT_PUSH.replace("market.btcusdt", "market.btc.usdt"),
        SPOT_PUSH.replace("market.btcusdt.depth.step0", "market.depth.step0"),
        SPOT_PUSH.replace("market.", "markets."),
        SPOT_PUSH.replace('{"ch"', '{"ping":1,"ch"'),
        SPOT_PUSH.replace('"version":126802', '"mrid":126802'),
        SPOT_PUSH.replace('"version":126802', '"version":126802.0'),
        SPOT_PUSH.replace('"version":126802', '"version":-1'),
        SPOT_PUSH.replace('"version":126802', '"version":126802,"version":126803'),
        SPOT_PUSH.replace('"ts":1618617600120', '"ts":null'),
        SPOT_PUSH.replace('"ts":1618617600120', f'"ts":{2**63 // 1_000_000 + 1}'),
        SPOT_PUSH.replace("61000.1", "61000.105"),  # prices are never rounded
        SPOT_PUSH.replace("61000.1", "0"),
        SPOT_PUSH.replace("[60999,2]", "[60999,0]"),
        SPOT_PUSH.replace("[60999,2]", '[60999,"2"]'),
        SPOT_PUSH.replace("[60999,2]", "[60999,2e]"),  # not JSON
        SPOT_PUSH.replace("[60999,2]", "[60999,2e1000]"),  # the exact path's to answer
        SPOT_PUSH.replace("[60999,2]", "[60999]"),
        SPOT_PUSH.replace('"asks":[[61001.25,0.5]],', ""),
        SPOT_PUSH.replace('"tick":{', '"tick":[{').replace("}}", "}]}"),
        # the tick's fields are its own: the push's beside it are not
        SPOT_PUSH.replace(',"version":126802', "").replace('"ts":1618617600125,', '"version":1,'),
        SPOT_PUSH.replace('"asks":[[61001.25,0.5]],', "")[:-1] + ',"asks":[[61001.25,0.5]]}',
        SPOT_PUSH.replace('{"bids"', '{"ch":"market.btcusdt.depth.step0","bids"').replace(
            '"ch":"market.btcusdt.depth.step0","ts"', '"ts"'
        ),
        SPOT_PUSH[:-1],
    ],
)
def test_a_huobi_frame_not_read_exactly_is_declined(frame: str) -> None:
    assert huobi_depth(frame, HUOBI_UNITS, "version", True) is None


def test_a_number_longer_than_any_venue_sends_is_declined_wherever_it_is() -> None:
    """orjson, the ordinary path of Binance, KuCoin and Coinbase, refuses an integer of
    310 digits as not JSON, even in a field no parser reads: a scan must not answer."""
    huge = '"x":1' + "0" * 400 + ","
    assert binance_frame(DEPTH, UNITS) is not None
    assert binance_frame(DEPTH.replace('{"stream"', "{" + huge + '"stream"'), UNITS) is None
    assert huobi_depth(SPOT_PUSH, HUOBI_UNITS, "version", True) is not None
    assert (
        huobi_depth(SPOT_PUSH.replace('{"ch"', "{" + huge + '"ch"'), HUOBI_UNITS, "version", True)
        is None
    )
    with_64 = DEPTH.replace('{"stream"', '{"x":1' + "0" * 63 + ',"stream"')
    assert binance_frame(with_64, UNITS) == binance_frame(DEPTH, UNITS)


@pytest.mark.parametrize("frame", [TICKER, BOOK])
def test_a_deribit_frame_cut_anywhere_is_declined(frame: str) -> None:
    """The reader's loops stop at the text's end (its NUL) inside a key, a string and a
    number alike."""
    assert deribit_frame(frame, TICKER_UNITS) is not None
    for end in range(len(frame)):
        assert deribit_frame(frame[:end], TICKER_UNITS) is None, end
        spaced = frame[:end] + " " * (len(frame) - end)  # the same length, the end spaces
        assert deribit_frame(spaced, TICKER_UNITS) is None, end
