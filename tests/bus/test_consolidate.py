"""The consolidated book against a naive recompute from the venue books, after every event:
different tick and lot sizes, venues going stale, halting, closing and coming back, and what
the published stream carries (summed levels and per-venue orders) rebuilt by a consumer."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from bus.consolidate import (
    CONSOLIDATED,
    IN_BOOK,
    ConsolidatedBook,
    Diff,
    Refused,
    order_id,
    order_key,
    size_unit,
)
from hub.events import Instrument, LevelChange
from hub.orders import apply_orders, order_book
from orderbook_core import L2Book

VENUES = [
    Instrument("COINBASE", "BTC-USD", "0.01", "0.00000001", "BTC-USD", "spot", "BTC", "USD"),
    Instrument("KRAKEN", "XBT/USD", "0.1", "0.0001", "BTC-USD", "spot", "BTC", "USD"),
    Instrument("BITSTAMP", "btcusd", "0.5", "0.001", "BTC-USD", "spot", "BTC", "USD"),
]
Merged = dict[tuple[int, Decimal], dict[str, Decimal]]
"""(side, price) -> {venue: size}, in decimals."""
STATES = ["live", "live", "live", "stale", "syncing", "halted", "closed"]


def naive(venues: list[Instrument], books: list[L2Book], states: list[str]) -> Merged:
    """(side, price as a Decimal) -> {venue: size as a Decimal} of the venues in the book,
    straight from their books and decimal tick and lot sizes."""
    out: dict[tuple[int, Decimal], dict[str, Decimal]] = {}
    for inst, book, state in zip(venues, books, states, strict=True):
        if state not in IN_BOOK:
            continue
        tick, lot = Decimal(inst.tick_size), Decimal(inst.lot_size)
        for side in (0, 1):
            for price, size in book.depth(side):
                out.setdefault((side, price * tick), {})[inst.venue] = size * lot
    return out


def merged(book: ConsolidatedBook) -> Merged:
    """The same from the consolidated book's own cells, in decimals."""
    inst = book.instrument()
    tick, lot = Decimal(inst.tick_size), Decimal(inst.lot_size)
    out: dict[tuple[int, Decimal], dict[str, Decimal]] = {}
    for (side, price), cell in book.cells.items():
        out[side, price * tick] = {book.members[n].venue: z * lot for n, z in cell.items()}
    return out


class Consumer:
    """What a node holds of the published stream: the summed book and the per-venue orders."""

    def __init__(self) -> None:
        self.book = L2Book()
        self.orders = order_book()

    def take(self, diff: Diff) -> None:
        self.book.apply(diff.changes())
        apply_orders(self.orders, diff.orders)

    def per_venue(self, book: ConsolidatedBook) -> Merged:
        inst = book.instrument()
        tick, lot = Decimal(inst.tick_size), Decimal(inst.lot_size)
        out: dict[tuple[int, Decimal], dict[str, Decimal]] = {}
        for side in (0, 1):
            for price, total, _n in self.orders.depth(side):
                cell = out.setdefault((side, price * tick), {})
                for oid in self.orders.order_ids(side, price):
                    member, o_side, o_price = order_key(oid)
                    assert (o_side, o_price) == (side, price)
                    size = self.orders.order(oid)
                    assert size is not None
                    cell[book.members[member].venue] = size[2] * lot
                assert sum(cell.values()) == total * lot
        return out


def random_change(rng: random.Random, book: L2Book, mid: int) -> LevelChange:
    side = rng.randrange(2)
    price = mid - rng.randrange(1, 30) if side == 0 else mid + rng.randrange(0, 30)
    held = dict(book.depth(side))
    size = 0 if price in held and rng.random() < 0.4 else rng.randrange(1, 50)
    return side, price, size


@pytest.mark.parametrize("seed", range(6))
def test_every_event_equals_the_naive_merge_of_the_venue_books(seed: int) -> None:
    rng = random.Random(seed)
    book = ConsolidatedBook(VENUES[0])
    members = [book.add(inst) for inst in VENUES]
    books = [L2Book() for _ in VENUES]
    states = ["syncing"] * len(VENUES)
    mids = [6_500_000, 650_000, 130_000]  # 65000 in each venue's ticks
    consumer = Consumer()
    for _step in range(600):
        i = rng.randrange(len(VENUES))
        diff = Diff()
        if rng.random() < 0.05:
            states[i] = rng.choice(STATES)
            bids, asks = books[i].snapshot()
            levels = [(0, p, s) for p, s in bids] + [(1, p, s) for p, s in asks]
            book.set_state(members[i], states[i], levels, diff)
        elif rng.random() < 0.02:  # a resync: the venue's book replaced while it is in
            fresh = L2Book()
            fresh.apply([random_change(rng, fresh, mids[i]) for _ in range(20)])
            books[i] = fresh
            bids, asks = fresh.snapshot()
            book.replace(
                members[i], [(0, p, s) for p, s in bids] + [(1, p, s) for p, s in asks], diff
            )
        else:
            changes = tuple(
                random_change(rng, books[i], mids[i]) for _ in range(rng.randrange(1, 4))
            )
            books[i].apply(changes)
            book.change(members[i], changes, diff)
        consumer.take(diff)
        want = naive(VENUES, books, states)
        assert merged(book) == want
        assert consumer.per_venue(book) == want
        assert {(s, p * Decimal("1e-8")): z for (s, p), z in _totals(consumer.book).items()} == {
            k: sum(v.values()) for k, v in want.items()
        }
    assert {m.state for m in members} <= set(STATES)


def _totals(book: L2Book) -> dict[tuple[int, int], Decimal]:
    return {(side, p): Decimal(s) * Decimal("1e-8") for side in (0, 1) for p, s in book.depth(side)}


def test_nbbo_names_every_venue_at_the_best_price_and_leaves_out_a_stale_one() -> None:
    book = ConsolidatedBook(VENUES[0])
    coinbase, kraken = book.add(VENUES[0]), book.add(VENUES[1])
    diff = Diff()
    book.set_state(coinbase, "live", [(0, 6_500_000, 100_000_000), (1, 6_500_010, 5)], diff)
    book.set_state(kraken, "live", [(0, 650_000, 2), (1, 650_002, 1)], diff)
    bid, ask = book.nbbo()
    # 65000.00: Coinbase 1 BTC and Kraken 0.0002 BTC; the best ask is Coinbase's 65000.10
    assert bid == (6_500_000_000_000, 100_000_000 + 20_000, ["COINBASE", "KRAKEN"])
    assert ask == (6_500_010_000_000, 5, ["COINBASE"])
    diff = Diff()
    assert book.set_state(coinbase, "stale", [], diff)
    assert diff.changes() == (
        (0, 6_500_000_000_000, 20_000),
        (1, 6_500_010_000_000, 0),
    )  # Coinbase's sizes leave; Kraken's stay
    assert book.nbbo() == (
        (6_500_000_000_000, 20_000, ["KRAKEN"]),
        (6_500_020_000_000, 10_000, ["KRAKEN"]),
    )
    assert book.member_list() == (
        ("COINBASE", "BTC-USD", "stale"),
        ("KRAKEN", "XBT/USD", "live"),
    )


def test_units_are_exact_integers_at_a_common_scale() -> None:
    book = ConsolidatedBook(VENUES[1])
    inst = book.instrument()
    assert (inst.venue, inst.symbol, inst.tick_size, inst.lot_size) == (
        CONSOLIDATED,
        "BTC-USD",
        "0.00000001",
        "0.00000001",
    )
    assert book.add(VENUES[0]).scale.price == 1_000_000  # 0.01 in 10**-8
    assert book.add(VENUES[2]).scale.size == 100_000  # 0.001 in 10**-8
    fine = Instrument("X", "BTCUSD", "0.000000001", "0.00000001", "BTC-USD", "spot", "BTC", "USD")
    assert not book.fits(fine)
    assert book.needs(fine) == (9, 8)
    with pytest.raises(Refused, match="finer units"):
        book.add(fine)


def test_sizes_merge_only_in_the_same_unit() -> None:
    inverse = Instrument(
        "BITMEX", "XBTUSD", "0.5", "1", "BTC-USD-PERP", "perp", "BTC", "USD", "BTC",
        contract_size="1", inverse=True,
    )  # fmt: skip
    deribit = Instrument(
        "DERIBIT", "BTC-PERPETUAL", "0.5", "1", "BTC-USD-PERP", "perp", "BTC", "USD", "BTC",
        contract_size="10", inverse=True,
    )  # fmt: skip
    linear = Instrument(
        "KRAKEN_FUTURES", "PF_XBTUSD", "1", "0.0001", "BTC-USD-PERP", "perp", "BTC", "USD", "USD",
        contract_size="1",
    )  # fmt: skip
    quanto = Instrument("BITMEX", "ETHUSD", "0.05", "1", "ETH-USD-PERP", "perp", "ETH", "USD")
    assert size_unit(inverse)[0] == size_unit(deribit)[0] == "USD (inverse perp)"
    book = ConsolidatedBook(inverse)
    book.add(inverse)
    assert book.add(deribit).scale.size == 10 * 10**8  # a lot is one 10 USD contract
    with pytest.raises(Refused, match="sizes are in BTC"):
        book.add(linear)
    with pytest.raises(Refused, match="no contract size"):
        ConsolidatedBook(quanto)
    spot = VENUES[0]
    with pytest.raises(Refused, match="is BTC-USD, not BTC-USD-PERP"):
        book.add(spot)


def test_order_ids_name_member_side_and_price() -> None:
    for member, side, price in [(0, 0, 0), (63, 1, (1 << 56) - 1), (5, 0, 6_500_000_000_000)]:
        assert order_key(order_id(member, side, price)) == (member, side, price)
        assert 0 <= order_id(member, side, price) < 1 << 63
