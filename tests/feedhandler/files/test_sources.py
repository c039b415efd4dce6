"""File replays as publishing sources: a consumer of the published events ends with exactly
the book the file replays to, in gap-free sequence, at the pace asked for."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from feedhandler.files.databento import databento_batches, replay_databento
from feedhandler.files.itch import itch_batches, replay_itch
from feedhandler.files.lobster import lobster_batches, replay_lobster
from feedhandler.files.pacing import Batch, Pacer, parse_speed
from feedhandler.files.replay import capture_batches
from feedhandler.venues.kraken import KrakenParser
from hub.events import BookUpdate, Event, Instrument, Status, Trade
from hub.orders import apply_orders, order_book, resting_orders
from hub.times import exchange_midnight_ns, trading_day_from_name
from orderbook_core import L2Book, L3Book
from orderbook_core.types import F_SNAPSHOT
from testing import itchgen as g
from testing.databento import session, write_csv
from testing.lobster import write_session
from tests.conftest import CAPTURES


class Consumer:
    """Rebuilds every stream from the events alone, checking each stream's seq is gap-free."""

    def __init__(self) -> None:
        self.books: dict[str, L2Book] = {}
        self.orders: dict[str, L3Book] = {}
        """Order-level books, for sources whose updates carry orders."""
        self.seqs: dict[str, int] = {}
        self.instruments: dict[str, Instrument] = {}
        self.trades: dict[str, int] = {}
        self.statuses: list[tuple[str, str]] = []
        self.prints: list[Trade] = []

    def take(self, events: Iterable[Event]) -> None:
        for e in events:
            if isinstance(e, Instrument):
                self.instruments[e.symbol] = e
                continue
            assert e.symbol in self.instruments, "instrument must come before its first event"
            if isinstance(e, BookUpdate):
                assert e.seq == self.seqs.get(e.symbol, 0) + 1
                self.seqs[e.symbol] = e.seq
                book = self.books.setdefault(e.symbol, L2Book())
                book.apply(e.changes)
                if e.orders is not None:
                    orders = self.orders.setdefault(e.symbol, order_book())
                    apply_orders(orders, e.orders)
                    # the order-level book sums to the level book at every seq
                    assert [lv[:2] for lv in orders.depth(0, 5)] == book.depth(0, 5)
                    assert [lv[:2] for lv in orders.depth(1, 5)] == book.depth(1, 5)
            elif isinstance(e, Trade):
                assert e.seq == self.trades.get(e.symbol, 0) + 1
                self.trades[e.symbol] = e.seq
                self.prints.append(e)
            elif isinstance(e, Status):
                self.statuses.append((e.symbol, e.state))


def consume(batches: Iterable[Batch]) -> Consumer:
    c = Consumer()
    for _ts, events in batches:
        c.take(events)
    return c


def test_lobster_source_ends_with_the_replayed_book(tmp_path: Path) -> None:
    messages, _orderbook, _n = write_session(tmp_path, seed=5, commands=3000)
    errors: list[str] = []
    c = consume(lobster_batches(messages, "TEST", errors.append))
    expected = replay_lobster(messages, None, "TEST")
    assert errors == []
    assert c.books["TEST"].snapshot() == expected.book.snapshot()
    assert c.seqs["TEST"] == expected.seq and c.trades["TEST"] == expected.trades
    assert c.instruments["TEST"] == Instrument(
        "LOBSTER", "TEST", "0.0001", "1", canonical="TEST", kind="equity"
    )  # equities keep the ticker as canonical id


def test_lobster_source_skips_bad_rows_without_touching_the_book(tmp_path: Path) -> None:
    messages, _orderbook, _n = write_session(tmp_path, seed=6, commands=500)
    good = consume(lobster_batches(messages, "T", lambda _e: None)).books["T"].snapshot()
    lines = messages.read_text().splitlines()
    lines.insert(50, "34200.1,1,99,abc,1000,1")  # unreadable size
    lines.insert(80, "34200.2,3,99,999999999,1000,1")  # removes more than the level holds
    lines.append("34200.9,1,7")  # truncated last row
    broken = tmp_path / "broken_message.csv"
    broken.write_text("\n".join(lines) + "\n")
    errors: list[str] = []
    c = consume(lobster_batches(broken, "T", errors.append))
    assert len(errors) == 3
    assert "broken_message.csv line 51" in errors[0]
    assert c.books["T"].snapshot() == good


def test_databento_source_ends_with_the_replayed_books(tmp_path: Path) -> None:
    batches, _truth = session(seed=3, commands=2000)
    path = tmp_path / "mbo.csv"
    write_csv(path, batches)
    errors: list[str] = []
    c = consume(databento_batches(path, errors.append))
    replay = replay_databento(path)
    expected = replay.summary()["instruments"]
    assert errors == [] and set(c.books) == set(expected)
    for instrument, ib in replay.books.items():  # every order, in queue order
        assert resting_orders(c.orders[replay._name(instrument)]) == resting_orders(ib.book)
    for symbol, book in c.books.items():
        bids, asks = book.snapshot(5)
        assert [list(b) for b in bids] == [b[:2] for b in expected[symbol]["bids"]]
        assert [list(a) for a in asks] == [a[:2] for a in expected[symbol]["asks"]]
        assert c.seqs[symbol] == expected[symbol]["book_updates"]


def test_itch_source_ends_with_the_replayed_books_and_reports_halts(tmp_path: Path) -> None:
    data = g.random_session(11, 20_000, ("AAPL", "MSFT"))
    data += g.trading_action(1, 10**12, "AAPL", "H")
    path = tmp_path / "day.itch"
    path.write_bytes(data)
    errors: list[str] = []
    c = consume(itch_batches(path, ["AAPL", "MSFT"], errors.append))
    expected = replay_itch(path, ["AAPL", "MSFT"])
    assert errors == []
    for symbol in ("AAPL", "MSFT"):
        bids, asks = expected.book(symbol).snapshot()
        assert resting_orders(c.orders[symbol]) == resting_orders(expected.book(symbol))
        assert c.books[symbol].snapshot() == (
            [(p, s) for p, s, _n in bids],
            [(p, s) for p, s, _n in asks],
        )
    assert ("AAPL", "halted") in c.statuses and c.statuses[-1] == ("AAPL", "halted")


def test_itch_source_skips_messages_of_an_unannounced_locate(tmp_path: Path) -> None:
    session = g.random_session(12, 5_000, ("AAPL", "MSFT"))
    clean = tmp_path / "clean.itch"
    clean.write_bytes(session)
    cut = 2 + struct.unpack_from(">H", session, 0)[0]  # after the first message
    stray = g.delete(999, 5, 77)  # a locate no R, A or F message announced
    path = tmp_path / "partial.itch"
    path.write_bytes(session[:cut] + stray + session[cut:] + stray)
    errors: list[str] = []
    c = consume(itch_batches(path, ["AAPL", "MSFT"], errors.append))
    assert errors == [
        f"partial.itch: ITCH 'D' message at byte {at}: stock locate 999 was never announced "
        "(no R, A or F message)"
        for at in (cut, len(session) + len(stray))
    ]
    expected = consume(itch_batches(clean, ["AAPL", "MSFT"], errors.append))
    for symbol in ("AAPL", "MSFT"):
        assert c.books[symbol].snapshot() == expected.books[symbol].snapshot()
        assert resting_orders(c.orders[symbol]) == resting_orders(expected.orders[symbol])


def printed_shares(data: bytes, locates: dict[int, str]) -> dict[str, tuple[int, int]]:
    """(prints, shares) per symbol straight from the bytes: E, C marked printable, P, and Q
    crosses of more than zero shares (an independent reading of the ITCH 5.0 spec)."""
    out: dict[str, tuple[int, int]] = {}
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from(">H", data, pos)
        m = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
        (locate,) = struct.unpack_from(">H", m, 1)
        shares = 0
        if m[:1] == b"E" or (m[:1] == b"C" and m[31:32] == b"Y"):
            (shares,) = struct.unpack_from(">I", m, 19)
        elif m[:1] == b"P":
            (shares,) = struct.unpack_from(">I", m, 20)
        elif m[:1] == b"Q":
            (shares,) = struct.unpack_from(">Q", m, 11)
        if shares and locate in locates:
            n, total = out.get(locates[locate], (0, 0))
            out[locates[locate]] = (n + 1, total + shares)
    return out


def test_itch_source_publishes_every_print_before_the_book_it_moved(tmp_path: Path) -> None:
    data = g.random_session(13, 20_000, ("AAPL", "MSFT", "TSLA"))
    path = tmp_path / "day.itch"
    path.write_bytes(data)
    updates: list[BookUpdate] = []
    c = Consumer()
    for _ts, events in itch_batches(path, ["AAPL", "MSFT"], print):
        c.take(events)
        updates += [e for e in events if isinstance(e, BookUpdate)]
        trades = [i for i, e in enumerate(events) if isinstance(e, Trade)]
        books = [i for i, e in enumerate(events) if isinstance(e, BookUpdate)]
        assert not trades or not books or max(trades) < min(books)
    expected = printed_shares(data, {1: "AAPL", 2: "MSFT"})
    for symbol in ("AAPL", "MSFT"):
        mine = [t for t in c.prints if t.symbol == symbol]
        assert (len(mine), sum(t.size for t in mine)) == expected[symbol]
        assert {t.side for t in mine} == {0, 1, 2}  # both aggressors and crosses
        assert len({t.trade_id for t in mine}) == len(mine)  # match numbers are unique
        assert [t.ts_event for t in mine] == sorted(t.ts_event for t in mine)
    assert not any(t.symbol == "TSLA" for t in c.prints)


def test_itch_source_stops_at_corrupt_bytes_and_keeps_the_good_book(tmp_path: Path) -> None:
    good = g.random_session(12, 3000, ("AAPL",))
    path = tmp_path / "bad.itch"
    path.write_bytes(good + b"\x00\x05Zjunk")
    errors: list[str] = []
    c = consume(itch_batches(path, ["AAPL"], errors.append))
    assert len(errors) == 1 and "bad.itch" in errors[0] and "'Z'" in errors[0]
    (tmp_path / "good.itch").write_bytes(good)
    bids, asks = replay_itch(tmp_path / "good.itch", ["AAPL"]).book("AAPL").snapshot()
    assert c.books["AAPL"].snapshot() == (
        [(p, s) for p, s, _n in bids],
        [(p, s) for p, s, _n in asks],
    )


def test_capture_source_first_update_is_the_flagged_snapshot() -> None:
    parser = KrakenParser()
    events = [
        e
        for _ts, ev in capture_batches(
            CAPTURES / "kraken-v2-book10_BTC-USD_2023-08.jsonl.zst", parser
        )
        for e in ev
    ]
    updates = [e for e in events if isinstance(e, BookUpdate)]
    assert updates[0].seq == 1 and updates[0].flags & F_SNAPSHOT
    assert len(updates[0].changes) == 20  # depth 10, both sides
    assert not any(u.flags & F_SNAPSHOT for u in updates[1:])
    assert [u.seq for u in updates] == list(range(1, len(updates) + 1))


@pytest.mark.parametrize(
    ("text", "factor"), [("max", 0.0), ("1", 1.0), ("10", 10.0), ("x2.5", 2.5)]
)
def test_speed_parses(text: str, factor: float) -> None:
    assert parse_speed(text) == factor


@pytest.mark.parametrize("text", ["0", "-1", "fast", ""])
def test_bad_speed_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="--speed"):
        parse_speed(text)


def test_pacer_holds_records_to_their_recorded_spacing() -> None:
    fast = Pacer("max")
    assert fast.delay(10**9) == 0 and fast.delay(5 * 10**9) == 0
    now = [50.0]
    pacer = Pacer("10", clock=lambda: now[0])  # ten times real time: 2 s of venue time is 0.2 s
    assert pacer.delay(100 * 10**9) == 0  # the first record sets the clock
    assert pacer.delay(102 * 10**9) == pytest.approx(0.2)
    now[0] += 0.15
    assert pacer.delay(102 * 10**9) == pytest.approx(0.05)
    now[0] += 1.0  # running late: no waiting, no catching up by waiting less later
    assert pacer.delay(102 * 10**9) == 0


@pytest.mark.parametrize(
    ("name", "day", "utc_offset_h"),
    [
        ("01302019.NASDAQ_ITCH50", date(2019, 1, 30), 5),  # EST
        ("07012020.NASDAQ_ITCH50.gz", date(2020, 7, 1), 4),  # EDT
        ("AAPL_2012-06-21_34200000_57600000_message_10.csv", date(2012, 6, 21), 4),
        ("day.itch", None, 0),
        ("13452019.NASDAQ_ITCH50", None, 0),  # no month 13
    ],
)
def test_trading_day_from_file_names_in_new_york_time(
    name: str, day: date | None, utc_offset_h: int
) -> None:
    assert trading_day_from_name(name) == day
    if day is not None:
        utc_midnight = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
        assert exchange_midnight_ns(day) == (utc_midnight + utc_offset_h * 3600) * 10**9


def test_itch_event_times_are_epoch_when_the_name_has_the_day(tmp_path: Path) -> None:
    data = g.random_session(14, 3000, ("AAPL",))
    path = tmp_path / "01302019.NASDAQ_ITCH50"
    path.write_bytes(data)
    c = consume(itch_batches(path, ["AAPL"], print))
    midnight = (int(datetime(2019, 1, 30, tzinfo=UTC).timestamp()) + 5 * 3600) * 10**9
    (path.parent / "plain.itch").write_bytes(data)
    plain = consume(itch_batches(path.parent / "plain.itch", ["AAPL"], print))
    assert len(c.prints) == len(plain.prints) > 0
    assert [t.ts_event - midnight for t in c.prints] == [t.ts_event for t in plain.prints]


def test_top_tracker_reports_only_changes_of_the_best_levels() -> None:
    from bus.output import TopTracker
    from hub.events import TopOfBook

    tracker = TopTracker()

    def update(seq: int) -> BookUpdate:
        return BookUpdate("V", "S", seq, seq * 10, seq * 10 + 1, ())

    assert tracker.after(update(1), (100, 5), None) == TopOfBook("V", "S", 1, 10, 11, 100, 5, 0, 0)
    assert tracker.after(update(2), (100, 5), None) is None  # a deeper level moved
    assert tracker.after(update(3), (100, 6), (101, 1)) == TopOfBook(
        "V", "S", 3, 30, 31, 100, 6, 101, 1
    )
    other = BookUpdate("V", "T", 1, 1, 1, ())
    assert tracker.after(other, (100, 6), (101, 1)) is not None  # streams are separate
