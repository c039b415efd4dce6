"""The consolidated book of one canonical instrument across the venues that list it (sans-I/O).

A ``ConsolidatedBook`` merges the L2 books of its member venue streams (the streams whose
Instrument carries its canonical id, hub.symbology) into one book: each level's size per
venue, and their sum. The consolidator (bus.consolidator) feeds it the venue books and
publishes what comes back as one more sequenced book stream, of venue ``CONSOLIDATED``:

- the update's ``changes`` are the summed levels (absolute sizes, 0 removes), so the
  stream is an ordinary L2 book with the source checksum, snapshots and resume;
- its ``orders`` are the per-venue sizes as order-level changes: one "order" per
  (venue, side, price), whose id names them (``order_id``/``order_key``), so a node keeps
  and syncs the per-venue detail exactly like any L3 book (it sums to the L2 book);
- its members and their states travel as ``Members`` events (hub.events) in order.

Units. Prices and sizes stay integers: the stream counts prices in 10**-P and sizes in
10**-S, P and S the most decimals any member's tick or lot (times its contract size)
needs, and at least ``MIN_DECIMALS``, so every member's ticks and lots are whole multiples
(``Scale``) and merging is exact integer arithmetic. A venue that needs more decimals than
the stream has can only join a new epoch of it at the finer units (``fits``).

Size units. Sizes are summed only when they count the same thing (``size_unit``): spot
and equities in the base asset (lot size); derivatives in contracts times
``contract_size``, which is base units for linear contracts and quote units for inverse
ones (hub.symbology). A stream's unit is its first member's; a venue whose sizes are in
another unit (an inverse perpetual beside a linear one, a quanto contract without a
contract size) is refused, never mixed in.

Members are in the book only while ``live`` or ``closed`` (MEMBER_STATES): a stale,
syncing or halted venue's levels leave the book (their sizes go to 0 in the same update)
and come back whole from its current book when it is live again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.decimals import parse_decimal
from hub.events import Instrument, LevelChange, OrderChange
from hub.orders import ADD, DELETE, UPDATE
from hub.symbology import EQUITY, SPOT

CONSOLIDATED = "CONSOLIDATED"
"""The venue name of every consolidated stream (its symbol is the canonical id)."""
MIN_DECIMALS = 8
"""Fewest decimals of a consolidated stream's price and size units (10**-8): most venues
fit, so the units rarely need to get finer later (a new epoch)."""
MAX_MEMBERS = 64
"""Most member venue streams of one consolidated stream (member numbers fit 6 bits)."""
PRICE_LIMIT = 1 << 56
"""Prices in the stream's units must be in 0 .. PRICE_LIMIT - 1 (they fit the order id)."""
MEMBER_STATES = ("live", "closed", "stale", "syncing", "halted")
"""A member's state: ``live`` (in sync and in the book), ``closed`` (its source ended; its
final book stays in), ``stale`` (the venue's book is frozen), ``syncing`` (the consolidator
lost its stream and waits for a snapshot), ``halted`` (the venue halted trading)."""
IN_BOOK = ("live", "closed")
"""Member states whose levels are in the book (the others are left out)."""


class Refused(ValueError):
    """A venue stream that cannot join a consolidated stream, and why."""


def decimals(text: str) -> tuple[int, int]:
    """``(mantissa, exponent)`` of a positive decimal with trailing zeros removed."""
    mant, exp = parse_decimal(text)
    while exp > 0 and mant % 10 == 0:
        mant, exp = mant // 10, exp - 1
    return mant, exp


def size_unit(inst: Instrument) -> tuple[str, tuple[int, int]]:
    """What one lot of the instrument counts, and its value as (mantissa, exponent) in it:
    the base asset per lot for spot and equities, ``contract_size`` x lot in base (linear)
    or quote (inverse) units for derivatives. Refused for a derivative without a contract
    size (its sizes are in no common unit)."""
    lot_m, lot_e = decimals(inst.lot_size)
    if inst.kind in (SPOT, EQUITY, ""):
        return f"{inst.base or inst.id}", (lot_m, lot_e)
    if not inst.contract_size:
        raise Refused(f"{inst.venue}:{inst.symbol} has no contract size: its sizes add to none")
    cs_m, cs_e = decimals(inst.contract_size)
    unit = inst.quote if inst.inverse else inst.base
    return f"{unit} ({'inverse' if inst.inverse else 'linear'} {inst.kind})", decimals_of(
        lot_m * cs_m, lot_e + cs_e
    )


def decimals_of(mant: int, exp: int) -> tuple[int, int]:
    while exp > 0 and mant % 10 == 0:
        mant, exp = mant // 10, exp - 1
    return mant, exp


@dataclass(frozen=True, slots=True)
class Scale:
    """One member's ticks and lots in the stream's units: multiply."""

    price: int
    size: int


def order_id(member: int, side: int, price: int) -> int:
    """The order id of a member's level: price, member number and side in one int64."""
    return (price << 7) | (member << 1) | side


def order_key(oid: int) -> tuple[int, int, int]:
    """``(member, side, price)`` of an order id ``order_id`` made."""
    return (oid >> 1) & (MAX_MEMBERS - 1), oid & 1, oid >> 7


@dataclass
class Member:
    """One venue stream of a consolidated book."""

    number: int
    venue: str
    symbol: str
    scale: Scale
    state: str = "syncing"
    levels: dict[tuple[int, int], int] = field(default_factory=dict)
    """What it puts in the book: (side, price) -> size in the stream's units (empty while
    it is out of the book)."""

    @property
    def in_book(self) -> bool:
        return self.state in IN_BOOK


class Diff:
    """The changes of one consolidated update: summed levels and per-venue orders."""

    __slots__ = ("levels", "orders")

    def __init__(self) -> None:
        self.levels: dict[tuple[int, int], int] = {}
        self.orders: list[OrderChange] = []

    def __bool__(self) -> bool:
        return bool(self.levels)

    def changes(self) -> tuple[LevelChange, ...]:
        return tuple((side, price, size) for (side, price), size in self.levels.items())


class ConsolidatedBook:
    """The merged book of one canonical id: per level, each member's size and the sum."""

    def __init__(self, first: Instrument, price_decimals: int = 0, size_decimals: int = 0) -> None:
        self.canonical = first.id
        self.unit = size_unit(first)[0]
        self.template = first
        tick_e = decimals(first.tick_size)[1]
        lot_e = size_unit(first)[1][1]
        self.price_decimals = max(MIN_DECIMALS, tick_e, price_decimals)
        self.size_decimals = max(MIN_DECIMALS, lot_e, size_decimals)
        self.members: list[Member] = []
        self.by_stream: dict[tuple[str, str], Member] = {}
        self.cells: dict[tuple[int, int], dict[int, int]] = {}
        """(side, price) -> {member number: size} of the members in the book."""
        self.totals: dict[tuple[int, int], int] = {}

    # --- membership -------------------------------------------------------------------

    def instrument(self) -> Instrument:
        """The consolidated stream's Instrument: the stream's units, the listing terms of
        its first member (venue-specific ones, symbol and contract size, left out)."""
        t = self.template
        return Instrument(
            CONSOLIDATED,
            self.canonical,
            _unit_text(self.price_decimals),
            _unit_text(self.size_decimals),
            canonical=self.canonical,
            kind=t.kind,
            base=t.base,
            quote=t.quote,
            settle=t.settle,
            expiry=t.expiry,
            strike=t.strike,
            right=t.right,
            inverse=t.inverse,
        )

    def check(self, inst: Instrument) -> None:
        """Raise Refused when ``inst`` cannot join: another canonical id or size unit, a
        venue already a member, or no room left."""
        if inst.id != self.canonical:
            raise Refused(f"{inst.venue}:{inst.symbol} is {inst.id}, not {self.canonical}")
        unit = size_unit(inst)[0]
        if unit != self.unit:
            raise Refused(
                f"{inst.venue}:{inst.symbol} sizes are in {unit}, "
                f"{self.canonical}'s in {self.unit}: not merged"
            )
        for m in self.members:
            if m.venue == inst.venue and m.symbol != inst.symbol:
                raise Refused(f"{inst.venue} already lists {self.canonical} as {m.symbol}")
        if len(self.members) >= MAX_MEMBERS and (inst.venue, inst.symbol) not in self.by_stream:
            raise Refused(f"{self.canonical} has {MAX_MEMBERS} members already")

    def fits(self, inst: Instrument) -> bool:
        """Whether the stream's units are fine enough for the instrument's ticks and lots."""
        return (
            decimals(inst.tick_size)[1] <= self.price_decimals
            and size_unit(inst)[1][1] <= self.size_decimals
        )

    def needs(self, inst: Instrument) -> tuple[int, int]:
        """The (price, size) decimals a stream holding ``inst`` too needs."""
        return (
            max(self.price_decimals, decimals(inst.tick_size)[1]),
            max(self.size_decimals, size_unit(inst)[1][1]),
        )

    def add(self, inst: Instrument) -> Member:
        """The member of ``inst``'s stream (a new one out of the book, state ``syncing``;
        the same one when it is a member already, its scale updated). Raise Refused when it
        cannot join or the units do not fit (``fits``)."""
        self.check(inst)
        if not self.fits(inst):
            raise Refused(f"{inst.venue}:{inst.symbol} needs finer units than {self.canonical}'s")
        tick_m, tick_e = decimals(inst.tick_size)
        lot_m, lot_e = size_unit(inst)[1]
        scale = Scale(
            tick_m * 10 ** (self.price_decimals - tick_e),
            lot_m * 10 ** (self.size_decimals - lot_e),
        )
        member = self.by_stream.get((inst.venue, inst.symbol))
        if member is not None:
            if member.scale != scale and member.levels:
                raise Refused(f"{inst.venue}:{inst.symbol} changed its units while in the book")
            member.scale = scale
            return member
        member = Member(len(self.members), inst.venue, inst.symbol, scale)
        self.members.append(member)
        self.by_stream[inst.venue, inst.symbol] = member
        return member

    def member_list(self) -> tuple[tuple[str, str, str], ...]:
        return tuple((m.venue, m.symbol, m.state) for m in self.members)

    # --- levels -----------------------------------------------------------------------

    def _set(self, diff: Diff, member: Member, side: int, price: int, size: int) -> None:
        """Set one member's size at one level (stream units), recording the change."""
        key = (side, price)
        old = member.levels.get(key, 0)
        if old == size:
            return
        oid = order_id(member.number, side, price)
        cell = self.cells.setdefault(key, {})
        if size:
            member.levels[key] = size
            cell[member.number] = size
        else:
            del member.levels[key]
            del cell[member.number]
        total = self.totals.get(key, 0) - old + size
        if total:
            self.totals[key] = total
        else:
            self.totals.pop(key, None)
            if not cell:
                del self.cells[key]
        diff.levels[key] = total
        orders = diff.orders
        if old == 0:
            orders.append((ADD, side, price, size, oid))
        elif size == 0:
            orders.append((DELETE, side, price, 0, oid))
        elif size < old:
            orders.append((UPDATE, side, price, size, oid))
        else:  # an order-level size only shrinks in place: a larger one is a new "order"
            orders.append((DELETE, side, price, 0, oid))
            orders.append((ADD, side, price, size, oid))

    def change(self, member: Member, changes: Iterable[LevelChange], diff: Diff) -> None:
        """A member's venue book changed by ``changes`` (its ticks and lots, absolute sizes):
        follow it while the member is in the book."""
        if not member.in_book:
            return
        sp, ss = member.scale.price, member.scale.size
        scaled = [(side, price * sp, size * ss) for side, price, size in changes]
        _check_prices(member, scaled)
        for side, price, size in scaled:
            self._set(diff, member, side, price, size)

    def replace(self, member: Member, levels: Iterable[LevelChange], diff: Diff) -> None:
        """Make the member's part of the book its venue book ``levels`` (its units; all of
        them), or nothing while it is out of the book."""
        sp, ss = member.scale.price, member.scale.size
        new = {(s, p * sp): z * ss for s, p, z in levels if z} if member.in_book else {}
        _check_prices(member, [(s, p, z) for (s, p), z in new.items()])
        for key in [k for k in member.levels if k not in new]:
            self._set(diff, member, key[0], key[1], 0)
        for (side, price), size in new.items():
            self._set(diff, member, side, price, size)

    def set_state(
        self, member: Member, state: str, levels: Iterable[LevelChange], diff: Diff
    ) -> bool:
        """Change a member's state; entering or leaving the book puts its whole venue book
        (``levels``) in or takes its part out. Whether the state changed."""
        if state == member.state:
            return False
        was = member.in_book
        member.state = state
        if member.in_book != was:
            self.replace(member, levels, diff)
        return True

    # --- reading ----------------------------------------------------------------------

    def side(self, side: int) -> list[tuple[int, int]]:
        """One side's summed levels, best first."""
        out = sorted((p, z) for (s, p), z in self.totals.items() if s == side)
        return out[::-1] if side == 0 else out

    def venues_at(self, side: int, price: int) -> dict[str, int]:
        """Each member's size at one level, by venue."""
        cell = self.cells.get((side, price), {})
        return {self.members[n].venue: z for n, z in sorted(cell.items())}

    def nbbo(self) -> tuple[tuple[int, int, list[str]] | None, tuple[int, int, list[str]] | None]:
        """The best bid and ask across the members in the book: (price, summed size, the
        venues holding it), None for an empty side."""
        out: list[tuple[int, int, list[str]] | None] = []
        for side in (0, 1):
            levels = self.side(side)
            if not levels:
                out.append(None)
                continue
            price, size = levels[0]
            out.append((price, size, list(self.venues_at(side, price))))
        return out[0], out[1]


def _check_prices(member: Member, levels: list[LevelChange]) -> None:
    """Refuse (ValueError, before anything changes) prices outside the order id's range."""
    for _side, price, _size in levels:
        if not 0 <= price < PRICE_LIMIT:
            raise ValueError(f"price {price} of {member.venue} is outside the stream's range")


def _unit_text(decimals: int) -> str:
    return "1" if decimals == 0 else "0." + "0" * (decimals - 1) + "1"
