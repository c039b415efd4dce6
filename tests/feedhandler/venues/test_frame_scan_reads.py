"""What the compiled frame scanners of venues that send strings (orderbook_core._scan)
read, in units, and what they must decline to the parser's ordinary path: Binance depth
updates and bookTickers, KuCoin level2 and tickers, Coinbase Advanced Trade l2_data,
Gate.io book updates (the twin declines every frame: the module skips on it). The JSON
number venues' scanners: test_frame_scan_reads_numbers.py."""

from __future__ import annotations

import pytest

from feedhandler.venues.coinbase import DEFAULT_UNITS, SIDES
from hub.decimals import Unit
from orderbook_core import (
    IMPLEMENTATION,
    binance_frame,
    coinbase_l2,
    gateio_update,
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
