"""Write NASDAQ TotalView-ITCH 5.0 messages: spec-conformant bytes for ``hub sample``, the
tests and the benchmarks (which import it as ``testing.itchgen``).

Every function returns one length-prefixed message. ``random_session``
builds a whole consistent session (directory, trading actions, adds,
executions, cancels, replaces, deletes, trades) from a seed.
"""

from __future__ import annotations

import random
import struct

from orderbook_core.itch_spec import MESSAGE_LENGTHS


def _frame(body: bytes) -> bytes:
    expected = MESSAGE_LENGTHS[chr(body[0])]
    if len(body) != expected:
        raise AssertionError(f"{chr(body[0])} built with {len(body)} bytes, spec says {expected}")
    return struct.pack(">H", len(body)) + body


def _head(t: str, locate: int, ts: int, tracking: int = 0) -> bytes:
    return t.encode() + struct.pack(">HH", locate, tracking) + ts.to_bytes(6, "big")


def _stock(symbol: str) -> bytes:
    return symbol.encode().ljust(8)


def system_event(ts: int, code: str) -> bytes:
    return _frame(_head("S", 0, ts) + code.encode())


def stock_directory(locate: int, ts: int, symbol: str, round_lot: int = 100) -> bytes:
    body = (
        _head("R", locate, ts)
        + _stock(symbol)
        + b"QN"
        + struct.pack(">I", round_lot)
        + b"NC  PNN1N"
        + struct.pack(">I", 0)
        + b"N"
    )
    return _frame(body)


def trading_action(locate: int, ts: int, symbol: str, state: str) -> bytes:
    return _frame(_head("H", locate, ts) + _stock(symbol) + state.encode() + b" " + b"    ")


def reg_sho(locate: int, ts: int, symbol: str, action: str = "0") -> bytes:
    return _frame(_head("Y", locate, ts) + _stock(symbol) + action.encode())


def participant_position(locate: int, ts: int, symbol: str, mpid: str = "MPID") -> bytes:
    return _frame(_head("L", locate, ts) + mpid.encode() + _stock(symbol) + b"YNA")


def mwcb_decline(ts: int) -> bytes:
    return _frame(_head("V", 0, ts) + struct.pack(">QQQ", 1, 2, 3))


def mwcb_status(ts: int, level: str = "1") -> bytes:
    return _frame(_head("W", 0, ts) + level.encode())


def ipo_quoting(locate: int, ts: int, symbol: str) -> bytes:
    return _frame(_head("K", locate, ts) + _stock(symbol) + struct.pack(">IcI", 34200, b"A", 100))


def luld_collar(locate: int, ts: int, symbol: str) -> bytes:
    return _frame(_head("J", locate, ts) + _stock(symbol) + struct.pack(">IIII", 1, 2, 0, 0))


def operational_halt(locate: int, ts: int, symbol: str) -> bytes:
    return _frame(_head("h", locate, ts) + _stock(symbol) + b"QH")


def add_order(
    locate: int,
    ts: int,
    ref: int,
    side: str,
    shares: int,
    symbol: str,
    price: int,
    mpid: str | None = None,
) -> bytes:
    body = (
        _head("A" if mpid is None else "F", locate, ts)
        + struct.pack(">Q", ref)
        + side.encode()
        + struct.pack(">I", shares)
        + _stock(symbol)
        + struct.pack(">I", price)
    )
    return _frame(body if mpid is None else body + mpid.encode())


def executed(locate: int, ts: int, ref: int, shares: int, match: int) -> bytes:
    return _frame(_head("E", locate, ts) + struct.pack(">QIQ", ref, shares, match))


def executed_with_price(
    locate: int, ts: int, ref: int, shares: int, match: int, price: int, printable: str = "Y"
) -> bytes:
    return _frame(
        _head("C", locate, ts)
        + struct.pack(">QIQ", ref, shares, match)
        + printable.encode()
        + struct.pack(">I", price)
    )


def cancel(locate: int, ts: int, ref: int, shares: int) -> bytes:
    return _frame(_head("X", locate, ts) + struct.pack(">QI", ref, shares))


def delete(locate: int, ts: int, ref: int) -> bytes:
    return _frame(_head("D", locate, ts) + struct.pack(">Q", ref))


def replace(locate: int, ts: int, old: int, new: int, shares: int, price: int) -> bytes:
    return _frame(_head("U", locate, ts) + struct.pack(">QQII", old, new, shares, price))


def trade(
    locate: int, ts: int, ref: int, side: str, shares: int, symbol: str, price: int, match: int
) -> bytes:
    return _frame(
        _head("P", locate, ts)
        + struct.pack(">Q", ref)
        + side.encode()
        + struct.pack(">I", shares)
        + _stock(symbol)
        + struct.pack(">IQ", price, match)
    )


def cross_trade(locate: int, ts: int, shares: int, symbol: str, price: int, match: int) -> bytes:
    return _frame(
        _head("Q", locate, ts)
        + struct.pack(">Q", shares)
        + _stock(symbol)
        + struct.pack(">IQ", price, match)
        + b"O"
    )


def broken_trade(locate: int, ts: int, match: int) -> bytes:
    return _frame(_head("B", locate, ts) + struct.pack(">Q", match))


def imbalance(locate: int, ts: int, symbol: str) -> bytes:
    return _frame(
        _head("I", locate, ts)
        + struct.pack(">QQ", 100, 50)
        + b"B"
        + _stock(symbol)
        + struct.pack(">III", 1, 2, 3)
        + b"O "
    )


def retail_interest(locate: int, ts: int, symbol: str) -> bytes:
    return _frame(_head("N", locate, ts) + _stock(symbol) + b"B")


def dlcr(locate: int, ts: int, symbol: str) -> bytes:
    return _frame(
        _head("O", locate, ts) + _stock(symbol) + b"Y" + struct.pack(">IIIQII", 1, 2, 3, 4, 5, 6)
    )


class _Live:
    """Live orders of one symbol with O(1) random pick and removal."""

    def __init__(self) -> None:
        self.orders: dict[int, list[int]] = {}  # ref -> [side, price, shares]
        self.refs: list[int] = []
        self.index: dict[int, int] = {}

    def add(self, ref: int, side: int, price: int, shares: int) -> None:
        self.orders[ref] = [side, price, shares]
        self.index[ref] = len(self.refs)
        self.refs.append(ref)

    def remove(self, ref: int) -> None:
        del self.orders[ref]
        i = self.index.pop(ref)
        last = self.refs.pop()
        if last != ref:
            self.refs[i] = last
            self.index[last] = i


def random_session(
    seed: int,
    messages: int,
    symbols: tuple[str, ...] = ("AAPL", "MSFT"),
    start_ns: int = 0,
    step_ns: int = 1000,
) -> bytes:
    """A consistent random session: every reference exists when used, sizes stay positive.
    Order flow starts ``start_ns`` after midnight, 1..``step_ns`` ns between messages."""
    rng = random.Random(seed)
    out = [system_event(1, "O")]
    live = {s: _Live() for s in symbols}
    locates = {s: i + 1 for i, s in enumerate(symbols)}
    for s, loc in locates.items():
        out.append(stock_directory(loc, 2, s))
        out.append(trading_action(loc, 3, s, "T"))
    ref, match, ts = 1, 1, start_ns + 10
    mid = {s: 1_500_000 + 100_000 * i for i, s in enumerate(symbols)}
    while len(out) < messages:
        ts += rng.randrange(1, step_ns)
        s = rng.choice(symbols)
        loc, book = locates[s], live[s]
        r = rng.random()
        if r < 0.45 or len(book.refs) < 5:
            letter = rng.choice("BS")
            off = 100 * (1 + int(rng.expovariate(1 / 5)))
            price = mid[s] - off if letter == "B" else mid[s] + off
            shares = 100 * rng.randrange(1, 20)
            out.append(
                add_order(
                    loc,
                    ts,
                    ref,
                    letter,
                    shares,
                    s,
                    price,
                    mpid="GSCO" if rng.random() < 0.1 else None,
                )
            )
            book.add(ref, 0 if letter == "B" else 1, price, shares)
            ref += 1
            continue
        target = book.refs[rng.randrange(len(book.refs))]
        side, price, shares = book.orders[target]
        if r < 0.60:
            n = rng.randrange(1, shares + 1)
            if rng.random() < 0.5:
                out.append(executed(loc, ts, target, n, match))
            else:
                out.append(
                    executed_with_price(loc, ts, target, n, match, price + rng.choice((0, 100)))
                )
            match += 1
            book.orders[target][2] -= n
        elif r < 0.72:
            n = rng.randrange(1, shares + 1)
            out.append(cancel(loc, ts, target, n))
            book.orders[target][2] -= n
        elif r < 0.84:
            off = 100 * (1 + int(rng.expovariate(1 / 5)))
            new_price = mid[s] - off if side == 0 else mid[s] + off
            new_shares = 100 * rng.randrange(1, 20)
            out.append(replace(loc, ts, target, ref, new_shares, new_price))
            book.remove(target)
            book.add(ref, side, new_price, new_shares)
            ref += 1
            continue
        elif r < 0.94:
            out.append(delete(loc, ts, target))
            book.orders[target][2] = 0
        else:
            kind = rng.random()
            if kind < 0.6:  # hidden-order execution
                out.append(trade(loc, ts, 0, rng.choice("BS"), 100, s, mid[s], match))
            elif kind < 0.8:  # a cross's bulk print (zero shares when nothing crossed)
                out.append(cross_trade(loc, ts, 100 * rng.randrange(0, 50), s, mid[s], match))
            else:  # an execution counted in a cross: changes the book, not a print
                n = rng.randrange(1, shares + 1)
                out.append(executed_with_price(loc, ts, target, n, match, mid[s], printable="N"))
                book.orders[target][2] -= n
            match += 1
        if book.orders[target][2] == 0:
            book.remove(target)
    out.append(system_event(ts + 1, "C"))
    return b"".join(out)
