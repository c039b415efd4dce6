"""Bitfinex v2 from the real 2021 capture: 7 P0 snapshots and 1,593 updates over 1,670
sequenced channel messages with 0 gaps, never crossed; a lost message stales every book
of the connection and a resubscription's snapshot brings one back exactly; ``cs``
checksums (added to the capture by an independent implementation) all verify and a
wrong one stales its book; malformed frames are refused with their reason; trades are
published once each; listings; the live runner and ``hub feed`` through Kafka end with
the replay's books."""

from __future__ import annotations

import asyncio
import functools
import json
import zlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import strategies as st

from feedhandler.files.capture import read_capture
from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.bitfinex import BitfinexParser
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Event, Status, Trade
from testing.mock_venue import MockCaptureVenue
from tests.conftest import CAPTURES, stack_env
from tests.feedhandler.fuzzing import Case, Raw, capture_items, dump, fuzzed, load
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture
from tests.feedhandler.venues.test_okx import kafka_books, replayed_books
from tests.test_live_feed import VenueThread

CAPTURE = CAPTURES / "bitfinex-spot_book-p0-seq-trades-ticker_2021-04-17.jsonl.zst"
UPDATES = {
    "tBFTUSD": 0,
    "tDOGUSD": 384,
    "tIOTETH": 783,
    "tMNABTC": 321,
    "tODEUSD": 17,
    "tSNGUSD": 9,
    "tTESTBTC:TESTUSD": 79,
}
SYMBOLS = list(UPDATES)
DOG_BOOK = 225206
"""tDOGUSD's book channel in the capture."""
BFT_TRADES = 232959


def frames() -> list[tuple[str, int]]:
    return [(x.data, x.ts_ns) for x in read_capture(CAPTURE) if x.kind == "recv"]


def loaded() -> tuple[BitfinexParser, list[tuple[str, int]]]:
    """A parser that has read the capture's REST answers, and the received frames."""
    parser = BitfinexParser()
    for x in read_capture(CAPTURE):
        if x.kind == "http":
            parser.on_http(x.url, x.data, x.ts_ns)
    return parser, frames()


def fed(parser: BitfinexParser, items: list[tuple[str, int]]) -> list[Event]:
    return [e for text, ts in items for e in parser.on_frame(text, ts)]


def renumbered(text: str, shift: int, channels: dict[int, int] | None = None) -> str:
    """A channel message with its sequence number moved by ``shift`` (and its channel id
    replaced as ``channels`` says)."""
    msg = load(text)
    if not isinstance(msg, list):
        return text
    chan = int(msg[0])
    msg[0] = Raw(str((channels or {}).get(chan, chan)))
    msg[-1] = Raw(str(int(msg[-1]) + shift))
    return dump(msg)


def is_update(text: str, chan: int) -> bool:
    return text.startswith(f"[{chan},[") and not text.startswith(f"[{chan},[[")


def test_the_capture_replays_with_every_sequence_number_and_never_crossed() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "bitfinex" and EXCHANGES["BITFINEX"] == "bitfinex"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    symbols = summary["symbols"]
    assert {s: v["book_updates"] for s, v in symbols.items()} == UPDATES
    assert sum(UPDATES.values()) == 1593
    for s in symbols.values():
        assert (s["snapshots"], s["gaps"], s["crossed"], s["resyncs"]) == (1, 0, 0, 0)
        assert (s["sequence_gaps"], s["book_inconsistencies"], s["live"]) == (0, 0, True)
        assert s["trades"] == 0  # only the subscriptions' history, which is not published
    totals = [sum(s[k] for s in symbols.values()) for k in ("ticker_agrees", "ticker_disagrees")]
    assert totals == [7, 7]  # the ticker is a throttled view of the book
    assert sum(s["ticker_sizes_agree"] for s in symbols.values()) == 3
    assert symbols["tTESTBTC:TESTUSD"]["bids"][0] == ["60417.00000000", "0.68807848"]
    parser, items = loaded()
    fed(parser, items)
    assert parser.sequence == 1670 and parser.sequence_gaps == 0
    assert max(s.book.level_count(side) for s in parser.books.values() for side in (0, 1)) == 100


def test_check_command_recognises_the_venue() -> None:
    out = check_capture(CAPTURE)
    summary = json.loads(out.stdout)
    assert summary["venue"] == "bitfinex"
    assert sum(s["book_updates"] for s in summary["symbols"].values()) == 1593


def test_prices_and_amounts_are_exact_integers_of_the_json_text() -> None:
    parser, items = loaded()
    tiny = next(i for i, (t, _) in enumerate(items) if "1.1e-7" in t)
    fed(parser, items[: tiny + 1])
    entry = next(e for e in load(items[tiny][0])[1] if "1.1e-7" in (str(e[0]), str(e[2])))
    chan = int(load(items[tiny][0])[0])
    symbol = parser.channels[chan][1]
    price = int(Decimal(str(entry[0])) * 10**8)
    side = 0 if not str(entry[2]).startswith("-") else 1
    assert parser.books[symbol].book.size_at(side, price) == abs(
        int(Decimal(str(entry[2])) * 10**8)
    )
    fed(parser, items[tiny + 1 :])
    test = parser.books["tTESTBTC:TESTUSD"]
    assert parser.units_for("tTESTBTC:TESTUSD")[0].text == "0.00000001"
    assert test.book.best_bid() == (60417 * 10**8, 68807848)


def test_a_lost_message_stales_every_book_and_a_resubscription_brings_one_back() -> None:
    truth, _ = loaded()
    parser, items = loaded()
    updates = [i for i, (t, _) in enumerate(items) if is_update(t, DOG_BOOK)]
    lost = updates[-50]  # after every book's snapshot
    fed(truth, items[: lost + 1])
    fed(parser, items[:lost])
    events = fed(parser, items[lost + 1 : lost + 2])
    truth.on_frame(*items[lost + 1])
    stale = [(e.symbol, e.reason) for e in events if isinstance(e, Status)]
    assert sorted(stale) == [(s, "sequence gap") for s in sorted(SYMBOLS)]
    assert parser.sequence_gaps == 1 and not any(s.live for s in parser.books.values())
    assert parser.recover(["tDOGUSD"]) == [
        f'{{"event": "unsubscribe", "chanId": {DOG_BOOK}}}',
        '{"event": "subscribe", "channel": "book", "symbol": "tDOGUSD", "prec": "P0", '
        '"freq": "F0", "len": "100"}',
    ]
    # Bitfinex's answers: the old channel retired, a new one with a snapshot of its book.
    parser.on_frame(f'{{"event":"unsubscribed","status":"OK","chanId":{DOG_BOOK}}}', 0)
    parser.on_frame(
        '{"event":"subscribed","channel":"book","chanId":7,"symbol":"tDOGUSD",'
        '"prec":"P0","freq":"F0","len":"100","pair":"DOGUSD"}',
        0,
    )
    assert parser.channels.get(DOG_BOOK) is None and parser.book_channels["tDOGUSD"] == 7
    events = parser.on_frame(snapshot_frame(truth, "tDOGUSD", 7, truth.sequence + 1), 0)
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    rest = [renumbered(t, 1, {DOG_BOOK: 7}) for t, _ in items[lost + 2 :]]
    fed(parser, [(t, 0) for t in rest])
    fed(truth, items[lost + 2 :])
    sync = parser.books["tDOGUSD"]
    assert sync.live and sync.stats.resynced == 1 and parser.sequence_gaps == 1
    assert sync.book.snapshot() == truth.books["tDOGUSD"].book.snapshot()
    assert [s for s, b in parser.books.items() if b.live] == ["tDOGUSD"]


def snapshot_frame(parser: BitfinexParser, symbol: str, chan: int, seq: int) -> str:
    """The book ``parser`` holds as Bitfinex sends a snapshot: ``[price, count, amount]``
    rows, bids best first then asks, numbers as they were sent."""
    book, texts = parser.books[symbol].book, parser.texts[symbol]
    rows = [
        "[{},1,{}]".format(*texts.sides[side][p].split(":"))
        for side in (0, 1)
        for p, _s in book.depth(side)
    ]
    return f"[{chan},[{','.join(rows)}],{seq}]"


def reference_checksum(sides: tuple[dict[str, str], dict[str, str]]) -> int:
    """Bitfinex's book checksum as its documentation describes it, apart from the parser:
    the 25 best bids and asks interleaved ``price:amount`` (asks negative), CRC32 signed."""
    bids = sorted(sides[0].items(), key=lambda kv: -Decimal(kv[0]))[:25]
    asks = sorted(sides[1].items(), key=lambda kv: Decimal(kv[0]))[:25]
    parts = []
    for i in range(max(len(bids), len(asks))):
        for levels in (bids, asks):
            if i < len(levels):
                parts += [levels[i][0], levels[i][1]]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def with_checksums(items: list[tuple[str, int]]) -> tuple[list[tuple[str, int]], int]:
    """The capture with a ``cs`` message after every book message (numbered into the
    sequence), computed by ``reference_checksum`` from the raw frames; and their count."""
    books: dict[int, tuple[dict[str, str], dict[str, str]]] = {}
    book_channels: set[int] = set()
    out: list[tuple[str, int]] = []
    shift = 0
    for text, ts in items:
        msg = load(text)
        if isinstance(msg, dict):
            if msg.get("event") == "subscribed" and msg.get("channel") == "book":
                book_channels.add(int(msg["chanId"]))
            out.append((text, ts))
            continue
        out.append((renumbered(text, shift), ts))
        chan = int(msg[0])
        if chan not in book_channels or not isinstance(msg[1], list):
            continue
        entries = msg[1] if isinstance(msg[1][0], list) else [msg[1]]
        sides = books.setdefault(chan, ({}, {}))
        if entries is msg[1]:
            sides[0].clear()
            sides[1].clear()
        for price, n, amount in entries:
            side = sides[1 if str(amount).startswith("-") else 0]
            if str(n) == "0":
                side.pop(str(price), None)
            else:
                side[str(price)] = str(amount)
        shift += 1
        cs = f'[{chan},"cs",{reference_checksum(sides)},{int(msg[-1]) + shift}]'
        out.append((cs, ts))
    return out, shift


def test_every_checksum_verifies_and_a_wrong_one_stales_its_book() -> None:
    assert reference_checksum(({"100": "2"}, {"101": "-3", "102": "-1"})) == (
        zlib.crc32(b"100:2:101:-3:102:-1") - (1 << 32)
        if zlib.crc32(b"100:2:101:-3:102:-1") >= 1 << 31
        else zlib.crc32(b"100:2:101:-3:102:-1")
    )
    parser, items = loaded()
    checked, added = with_checksums(items)
    assert added == 1600  # 7 snapshots + 1,593 updates
    fed(parser, checked)
    assert sum(s.stats.checksums_ok for s in parser.books.values()) == 1600
    assert sum(s.stats.checksums_failed for s in parser.books.values()) == 0
    assert parser.sequence_gaps == 0 and all(s.live for s in parser.books.values())

    parser, _ = loaded()
    wrong = next(
        i for i, (t, _) in enumerate(checked) if t.startswith(f'[{DOG_BOOK},"cs"') and i > 300
    )
    fed(parser, checked[:wrong])
    msg = load(checked[wrong][0])
    msg[2] = Raw(str(int(msg[2]) ^ 1))
    events = parser.on_frame(dump(msg), 5)
    assert events == [Status("BITFINEX", "tDOGUSD", "stale", "checksum", 0, 5)]
    assert parser.books["tDOGUSD"].stats.checksums_failed == 1
    assert [s for s, b in parser.books.items() if not b.live] == ["tDOGUSD"]


def test_malformed_frames_are_refused_with_a_reason() -> None:
    parser, items = loaded()
    at = [i for i, (t, _) in enumerate(items) if is_update(t, DOG_BOOK)][50]
    fed(parser, items[:at])
    seq = parser.sequence

    def next_frame(body: str) -> str:
        nonlocal seq
        seq += 1
        return body.replace("SEQ", str(seq))

    book = parser.books["tDOGUSD"].book.snapshot()
    events = parser.on_frame(next_frame(f"[{DOG_BOOK},[1e400,1,2],SEQ]"), 1)
    assert events == [Status("BITFINEX", "tDOGUSD", "stale", "malformed range", 0, 1)]
    assert parser.books["tDOGUSD"].book.snapshot() == book
    assert [s for s, b in parser.books.items() if not b.live] == ["tDOGUSD"]
    assert "price" in parser.errors[-1]
    events = parser.on_frame(next_frame(f'[{BFT_TRADES},"te",[1,2,"x",4],SEQ]'), 1)
    assert events == [] and parser.reasons["shape"] == 1  # a trade: no book to resync
    events = parser.on_frame(next_frame("[424242,[1,1,1],SEQ]"), 1)
    assert parser.reasons["symbol"] == 1 and "channel 424242" in parser.errors[-1]
    assert not any(b.live for b in parser.books.values())  # any book's message, maybe
    assert parser.on_frame('{"event":"error","msg":"dup","code":10301}', 1) == []
    assert parser.reasons["venue"] == 1
    parser.on_frame(f'[{DOG_BOOK},"hb","x"]', 1)
    assert parser.reasons["shape"] == 2 and "sequence number" in parser.errors[-1]
    parser.on_frame("not json", 1)
    assert parser.malformed == 6 and parser.reasons["json"] == 1
    assert parser.sequence_gaps == 0


def test_a_deletion_the_book_cannot_match_means_a_lost_update() -> None:
    parser, items = loaded()
    at = [i for i, (t, _) in enumerate(items) if is_update(t, DOG_BOOK)][50]
    fed(parser, items[:at])
    nxt = parser.sequence + 1
    events = parser.on_frame(f"[{DOG_BOOK},[1,0,1],{nxt}]", 2)  # no bid at 1
    assert events == [
        Status("BITFINEX", "tDOGUSD", "stale", "deletion of a level the book lacks", 0, 2)
    ]
    assert parser.extra_stats("tDOGUSD")["book_inconsistencies"] == 1
    assert parser.books["tDOGUSD"].stats.gaps == 1 and parser.malformed == 0
    parser.on_frame(f"[{DOG_BOOK},[2,0,2],{nxt + 1}]", 2)
    assert parser.reasons == {"number": 1}  # a deletion names its side with 1 or -1


def test_info_codes_and_a_new_connection_stale_every_book() -> None:
    parser, items = loaded()
    fed(parser, items)
    events = parser.on_frame('{"event":"info","code":20051,"msg":"Stopping. Reconnect"}', 3)
    assert sorted(e.symbol for e in events) == sorted(SYMBOLS)
    assert {e.reason for e in events if isinstance(e, Status)} == {"venue restart"}
    parser.on_frame(items[0][0], 4)  # the greeting of the next connection
    assert (parser.flags, parser.sequence, parser.channels) == (0, -1, {})


def test_each_trade_is_published_once_with_its_side() -> None:
    parser, items = loaded()
    fed(parser, items)
    seq = parser.sequence
    te = f'[{BFT_TRADES},"te",[670000001,1618677600123,-0.5,0.0775],{seq + 1}]'
    tu = f'[{BFT_TRADES},"tu",[670000001,1618677600123,-0.5,0.0775],{seq + 2}]'
    buy = f'[{BFT_TRADES},"tu",[670000002,1618677600456,12.25,0.07752],{seq + 3}]'
    trades = [e for t in (te, tu, buy) for e in parser.on_frame(t, 99) if isinstance(e, Trade)]
    assert [(t.trade_id, t.side, t.price, t.size, t.seq) for t in trades] == [
        ("670000001", 1, 7750000, 50000000, 1),
        ("670000002", 0, 7752000, 1225000000, 2),
    ]
    assert trades[0].ts_event == 1618677600123 * 1_000_000 and trades[0].ts_recv == 99
    assert {t.symbol for t in trades} == {"tBFTUSD"} and parser.sequence_gaps == 0


def test_listings_name_the_instruments_canonically() -> None:
    parser, _ = loaded()
    ids = {n: parser.listings[n].canonical for n in ("tBTCUSD", "tBTCUST", "tTESTBTC:TESTUSD")}
    assert ids == {
        "tBTCUSD": "BTC-USD",
        "tBTCUST": "BTC-USDT",
        "tTESTBTC:TESTUSD": "TESTBTC-TESTUSD",
    }
    p = parser.listings["tBTCF0:USTF0"]
    assert (p.canonical, p.kind, p.settle, p.contract_size, p.inverse) == (
        "BTC-USDT-PERP",
        "perp",
        "USDT",
        "1",
        False,
    )
    url = "https://api-pub.bitfinex.com/v2/conf/pub:map:currency:sym"
    parser.on_http(url, '[[["IOT","IOTA"],["UST","USDt"]]]', 0)
    assert parser.listings["tIOTETH"].canonical == "IOTA-ETH"
    assert parser.listings["tBTCUST"].canonical == "BTC-USDT"


def test_registration_subscribe_and_heartbeat() -> None:
    spec = VENUES["bitfinex"]
    assert "bitfinex" in LIVE_SOURCES
    assert (spec.url, spec.rest) == (
        "wss://api-pub.bitfinex.com/ws/2",
        "https://api-pub.bitfinex.com",
    )
    parser = spec.parser()
    assert isinstance(parser, BitfinexParser)
    assert [json.loads(m) for m in parser.subscribe(["tBTCUSD"])] == [
        {"event": "conf", "flags": 65536 + 131072},
        {
            "event": "subscribe",
            "channel": "book",
            "symbol": "tBTCUSD",
            "prec": "P0",
            "freq": "F0",
            "len": "100",
        },
        {"event": "subscribe", "channel": "trades", "symbol": "tBTCUSD"},
        {"event": "subscribe", "channel": "ticker", "symbol": "tBTCUSD"},
    ]
    assert parser.heartbeat() == ['{"event": "ping", "cid": 1}'] and parser.heartbeat_s > 0
    assert parser.on_frame('{"event":"pong","ts":1618677543000,"cid":1}', 0) == []
    assert parser.instrument_urls(spec.rest)[0].endswith("/v2/conf/pub:map:currency:sym")


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    runner, mirror, venue = await runner_against_capture(CAPTURE, BitfinexParser, SYMBOLS, 0.01)
    parser = runner.parser
    assert isinstance(parser, BitfinexParser)
    assert json.loads(venue.received[0]) == {"event": "conf", "flags": 196608}
    assert '{"event": "ping", "cid": 1}' in venue.received
    assert sorted(venue.rest_requests) == sorted(
        f"/v2/conf/{n}"
        for n in ("pub:map:currency:sym", "pub:list:pair:exchange", "pub:list:pair:future")
    )
    assert parser.malformed == 0 and parser.sequence == 1670 and parser.sequence_gaps == 0
    want = replayed_books(CAPTURE, BitfinexParser())
    assert {s: b.book.snapshot() for s, b in parser.books.items()} == want
    assert {s: b.snapshot() for s, b in mirror.books.items()} == want
    assert mirror.states == [] and set(want) == set(SYMBOLS)


@pytest.mark.services
def test_hub_feed_through_kafka_ends_with_the_replays_books(
    hub_process: Any, unique: str, services: dict[str, str]
) -> None:
    """``hub feed --source bitfinex`` as a real process against the capture played back by a
    mock venue, publishing to the real Kafka: the published updates rebuild the replay's
    books, each symbol's seqs gap-free."""
    thread = VenueThread(MockCaptureVenue(CAPTURE))  # type: ignore[arg-type]
    port = thread.start()
    try:
        hub_process(
            "feed",
            "--source",
            "bitfinex",
            "--url",
            f"ws://127.0.0.1:{port}",
            "--rest-url",
            f"http://127.0.0.1:{port}",
            "--symbols",
            ",".join(SYMBOLS),
            "--metrics-port",
            "0",
            env=stack_env(services, unique),
        )
        thread.wait_done(60)
        want = replayed_books(CAPTURE, BitfinexParser())
        seen, seqs = asyncio.run(kafka_books(services["kafka"], f"{unique}.book", want))
    finally:
        thread.stop()
    assert seen == want
    for symbol in SYMBOLS:
        assert seqs[symbol] == list(range(1, len(seqs[symbol]) + 1)), "gap-free per symbol"


def amount_changed(original: str, mutated: str | bytes) -> bool:
    """A book entry's amount replaced by another number: the sign is the side, so ``-1``
    for ``-560.00497411`` is another valid message (a lie no parser can see)."""
    try:
        text = mutated.decode() if isinstance(mutated, bytes) else mutated
        a, b = load(original), load(text)
    except ValueError:
        return False
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b) > 1):
        return False
    if not (isinstance(a[1], list) and isinstance(b[1], list) and len(a[1]) == len(b[1])):
        return False
    pairs = zip(a[1], b[1], strict=True) if a[1] and isinstance(a[1][0], list) else [(a[1], b[1])]
    return any(
        isinstance(x, list)
        and isinstance(y, list)
        and len(x) == len(y) == 3
        and x[:2] == y[:2]
        and x[2] != y[2]
        and isinstance(y[2], Raw)
        for x, y in pairs
    )


@functools.cache
def fuzz_case() -> Case:
    return Case("bitfinex", capture_items(CAPTURE), BitfinexParser, 1, 400, chained=False)


@fuzzed
def test_mutated_frames_never_raise_and_books_stay_exact_or_stale(data: st.DataObject) -> None:
    """The harness of test_fuzz_venues on this capture, with amounts changed to another
    number counted as lies."""
    fuzz_case().fuzz(data, amount_changed)


def test_book_updates_are_published_as_one_stream_per_symbol() -> None:
    parser, items = loaded()
    updates = [e for e in fed(parser, items) if isinstance(e, BookUpdate)]
    for symbol, n in UPDATES.items():
        seqs = [u.seq for u in updates if u.symbol == symbol]
        assert seqs == list(range(1, n + 2))  # the snapshot, then every update
