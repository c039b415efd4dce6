"""What the compiled frame scanners of venues that send JSON numbers
(orderbook_core._scan_numbers, _scan_rows) read, in units, and what they must decline to
the parser's ordinary path: Kraken Futures book messages, BitMEX book rows, Bitfinex
entries and snapshots, Deribit tickers and books, Crypto.com books, Huobi depth pushes
(the twin declines every frame: the module skips on it). The string venues' scanners:
test_frame_scan_reads.py."""

from __future__ import annotations

import gc

import pytest

from hub.decimals import Unit
from hub.events import BUY, SELL
from orderbook_core import (
    IMPLEMENTATION,
    binance_frame,
    bitfinex_book,
    bitmex_book,
    cryptocom_book,
    deribit_frame,
    huobi_depth,
    kraken_futures_book,
)
from tests.feedhandler.venues.test_frame_scan_reads import DEPTH, UNITS

pytestmark = pytest.mark.skipif(IMPLEMENTATION != "cython", reason="the twin declines every frame")


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
