"""Crypto.com Exchange v2 market data from the real 2021 capture: 1,525 full ``book``
snapshots for 10 pairs, of which 113 arrive with an older ``t`` than the newest already
applied and 41 repeat it (both dropped: the newest book wins), never crossed; prices and
sizes read exactly from JSON numbers; the heartbeat answered; malformed frames refused
with their reason; trades; listings; the live runner ends with the replay's books."""

from __future__ import annotations

import itertools
import json

from feedhandler.files.replay import EXCHANGES, replay_capture
from feedhandler.venues import VENUES
from feedhandler.venues.cryptocom import CryptocomParser
from hub.config import LIVE_SOURCES
from hub.events import BookUpdate, Status, Trade
from tests.conftest import CAPTURES
from tests.feedhandler.fuzzing import Item, capture_items, fed
from tests.feedhandler.venues.capture_runner import check_capture, runner_against_capture

CAPTURE = CAPTURES / "cryptocom-spot_book150-ticker-trades-candles_2021-11-23.jsonl.zst"
REST = "https://api.crypto.com"
SYMBOLS = [
    "MATIC_USDT",
    "HNT_USDT",
    "LPT_USDC",
    "GRT_CRO",
    "HOT_USDT",
    "BAND_USDT",
    "SUSHI_USDT",
    "RGT_USDC",
    "FLOW_CRO",
    "ONE_USDT",
]
BEAT = '{"id":1637709519420,"method":"public/heartbeat"}'


def lines() -> list[Item]:
    return capture_items(CAPTURE)


def book(name: str, t: int, bids: str, asks: str) -> str:
    return (
        f'{{"code":0,"method":"subscribe","result":{{"instrument_name":"{name}",'
        f'"subscription":"book.{name}.150","channel":"book","depth":150,'
        f'"data":[{{"bids":{bids},"asks":{asks},"t":{t}}}]}}}}'
    )


def test_the_capture_replays_1525_snapshots_keeping_the_newest_never_crossed() -> None:
    summary = replay_capture(CAPTURE)
    assert summary["venue"] == "cryptocom" and EXCHANGES["CRYPTO.COM"] == "cryptocom"
    assert summary["malformed"] == 0 and summary["bad_lines"] == 0
    assert summary["stale_books"] == {}
    symbols = summary["symbols"]
    assert sorted(symbols) == sorted(SYMBOLS)
    applied = sum(s["snapshots"] for s in symbols.values())
    older = sum(s["snapshots_older"] for s in symbols.values())
    repeated = sum(s["snapshots_repeated"] for s in symbols.values())
    assert (applied, older, repeated) == (1371, 113, 41) and applied + older + repeated == 1525
    for s in symbols.values():
        assert (s["gaps"], s["crossed"], s["resyncs"], s["live"]) == (0, 0, 0, True)
    assert sum(s["trades"] for s in symbols.values()) == 1143
    out = check_capture(CAPTURE)
    assert json.loads(out.stdout)["venue"] == "cryptocom"


def test_units_and_listings_come_from_the_instruments() -> None:
    parser = CryptocomParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    assert [u.text for u in parser.units_for("HNT_USDT")] == ["0.001", "0.001"]
    assert [u.text for u in parser.units_for("MATIC_BTC")] == ["0.000000001", "1"]
    assert parser.listings["GRT_CRO"].canonical == "GRT-CRO"
    assert parser.listings["SHIB_USDC"].canonical == "SHIB-USDC"


def test_prices_are_exact_from_json_numbers_with_trailing_zeros() -> None:
    parser = CryptocomParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    events = parser.on_frame(book("HNT_USDT", 5, "[[45.320,0.386,1]]", "[[45.400,1.000,2]]"), 7)
    assert sum(isinstance(e, BookUpdate) for e in events) == 1
    assert parser.books["HNT_USDT"].book.snapshot() == ([(45320, 386)], [(45400, 1000)])


def test_an_older_or_repeated_snapshot_is_dropped_and_the_newest_kept() -> None:
    parser = CryptocomParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("HNT_USDT", 10, "[[45.0,1,1]]", "[[46.0,1,1]]"), 1)
    assert parser.on_frame(book("HNT_USDT", 9, "[[44.0,1,1]]", "[[46.0,1,1]]"), 2) == []
    assert parser.on_frame(book("HNT_USDT", 10, "[[44.0,1,1]]", "[[46.0,1,1]]"), 3) == []
    assert parser.books["HNT_USDT"].book.snapshot() == ([(45000, 1000)], [(46000, 1000)])
    assert parser.extra_stats("HNT_USDT")["snapshots_older"] == 1
    assert parser.extra_stats("HNT_USDT")["snapshots_repeated"] == 1
    events = parser.on_frame(book("HNT_USDT", 11, "[[44.0,1,1]]", "[[46.0,1,1]]"), 4)
    assert len(events) == 1 and parser.books["HNT_USDT"].book.snapshot()[0] == [(44000, 1000)]


def test_a_stale_book_takes_the_resubscriptions_snapshot_whatever_its_t() -> None:
    parser = CryptocomParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("HNT_USDT", 10, "[[45.0,1,1]]", "[[46.0,1,1]]"), 1)
    events = parser.on_frame(book("HNT_USDT", 11, "[[45.0,1,1]]", "[[46.0,1.0001,1]]"), 2)
    assert [e.state for e in events if isinstance(e, Status)] == ["stale"]
    assert parser.on_frame(book("HNT_USDT", 12, "[[44.0,1,1]]", "[[46.0,1,1]]"), 3) == []
    assert [json.loads(m) for m in parser.recover(["HNT_USDT"])] == [
        {"method": "subscribe", "params": {"channels": ["book.HNT_USDT.150"]}}
    ]
    events = parser.on_frame(book("HNT_USDT", 9, "[[44.0,1,1]]", "[[46.0,1,1]]"), 3)
    assert [e.state for e in events if isinstance(e, Status)] == ["resynced"]
    assert parser.books["HNT_USDT"].live


def test_a_lost_first_snapshot_is_not_replaced_by_an_older_one() -> None:
    """Fuzz: a pair's first push with its ``code`` removed was refused, attributed to no
    book, and the pair's next, older push then stood as its live book."""
    parser = CryptocomParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("HNT_USDT", 10, "[[45.0,1,1]]", "[[46.0,1,1]]"), 1)
    damaged = json.loads(book("HOT_USDT", 20, "[[0.0138,1,1]]", "[[0.0139,1,1]]"))
    del damaged["code"]
    events = parser.on_frame(json.dumps(damaged), 2)
    assert parser.reasons == {"shape": 1} and "'code'" in parser.errors[-1]
    assert events == [] and not parser.books["HOT_USDT"].live  # never published: no status
    assert parser.books["HNT_USDT"].live  # the damage named its book: no other resyncs
    assert parser.on_frame(book("HOT_USDT", 19, "[[0.0137,1,1]]", "[[0.0139,1,1]]"), 3) == []
    assert not parser.books["HOT_USDT"].live and parser.recover(["HOT_USDT"])
    parser.on_frame(book("HOT_USDT", 21, "[[0.0137,1,1]]", "[[0.0139,1,1]]"), 4)
    assert parser.books["HOT_USDT"].live


def test_the_heartbeat_is_answered_with_its_id() -> None:
    parser = CryptocomParser()
    assert parser.on_frame(BEAT, 1) == []
    assert [json.loads(m) for m in parser.answers()] == [
        {"id": 1637709519420, "method": "public/respond-heartbeat"}
    ]
    assert parser.answers() == []


def test_malformed_frames_are_refused_with_a_reason() -> None:
    parser = CryptocomParser()
    fed(parser, [x for x in lines() if x[0] == "http"])
    parser.on_frame(book("HNT_USDT", 10, "[[45.0,1,1]]", "[[46.0,1,1]]"), 1)
    live = parser.books["HNT_USDT"]
    before = live.book.snapshot()
    events = parser.on_frame(book("HNT_USDT", 2**40, '[["45.0",1,1]]', "[]"), 1)
    assert events == [Status("CRYPTO.COM", "HNT_USDT", "stale", "malformed shape", 0, 1)]
    assert live.book.snapshot() == before and "price" in parser.errors[-1]
    parser.on_frame(book("NOPE_USDT", 1, "[]", "[]"), 1)
    assert parser.reasons["symbol"] == 1
    parser.on_frame(book("HNT_USDT", 1, "[[45.0001,1,1]]", "[]"), 1)
    assert parser.reasons["number"] == 1
    parser.on_frame('{"code":10004,"method":"subscribe","message":"bad"}', 1)
    assert parser.reasons["venue"] == 1
    assert parser.malformed == 4


def test_trades_are_normalised_oldest_first() -> None:
    parser = CryptocomParser()
    trades = [e for e in fed(parser, lines()) if isinstance(e, Trade)]
    assert len(trades) == 1143 and {t.side for t in trades} == {0, 1}
    first = next(t for t in trades if t.symbol == "MATIC_USDT")
    matic = [t for t in trades if t.symbol == "MATIC_USDT"]
    assert [t.seq for t in matic] == list(range(1, len(matic) + 1))
    assert all(a.ts_event <= b.ts_event for a, b in itertools.pairwise(matic))
    assert first.side == 1 and first.ts_recv > first.ts_event > 0
    last_of_first_frame = next(t for t in matic if t.trade_id == "2008994948736251682")
    assert (last_of_first_frame.price, last_of_first_frame.size) == (175445, 3982)
    assert last_of_first_frame.ts_event == 1637709515137 * 1_000_000


def test_registration_and_subscribe() -> None:
    spec = VENUES["cryptocom"]
    assert "cryptocom" in LIVE_SOURCES
    assert (spec.url, spec.rest) == ("wss://stream.crypto.com/v2/market", REST)
    parser = spec.parser()
    assert isinstance(parser, CryptocomParser)
    assert [json.loads(m) for m in parser.subscribe(["BTC_USDT"])] == [
        {
            "method": "subscribe",
            "params": {"channels": ["book.BTC_USDT.150", "trade.BTC_USDT", "ticker.BTC_USDT"]},
        }
    ]
    assert parser.instrument_urls(REST) == [f"{REST}/v2/public/get-instruments"]


async def test_the_live_runner_against_the_capture_ends_with_the_replays_books() -> None:
    answer = json.dumps({"id": 1637709519420, "method": "public/respond-heartbeat"})
    runner, mirror, venue = await runner_against_capture(
        CAPTURE, CryptocomParser, SYMBOLS, expect=[answer]
    )
    parser = runner.parser
    assert isinstance(parser, CryptocomParser)
    assert json.loads(venue.received[0]) == json.loads(parser.subscribe(SYMBOLS)[0])
    assert venue.rest_requests == ["/v2/public/get-instruments"]
    assert parser.malformed == 0
    replayed = CryptocomParser()
    fed(replayed, lines())
    for symbol in SYMBOLS:
        sync = parser.books[symbol]
        assert sync.live and sync.book.snapshot() == replayed.books[symbol].book.snapshot()
        assert mirror.books[symbol].snapshot() == sync.book.snapshot()
    assert mirror.states == []
