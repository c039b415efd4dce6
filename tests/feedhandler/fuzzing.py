"""Mutated real venue frames for the parser fuzz tests, and the books they are judged by.

A ``Case`` is a recorded capture (its received frames and REST answers, in
order), a parser factory and the window of inputs that may be mutated. The
clean replay of the window is the reference: after each input, a digest of
every book. One fuzz example replays the clean prefix, feeds one mutated
input, then ``follow`` clean inputs, and checks that nothing raised and that
every book is either exact or marked stale (see ``Case.check``).

Mutations (``mutate``): a value replaced by one of another JSON type or by a
huge or non-numeric number (70 digits, 1e400, -1, NaN, 2**63), a key
removed, a key added, the raw bytes truncated, or invalid UTF-8 inserted.
Numbers are kept as the exact text the venue sent, so an unmutated number
never changes when the frame is written back.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from feedhandler.files.capture import read_capture
from feedhandler.venues.base import ParserBase
from hub.decimals import Unit
from hub.events import Event
from orderbook_core import L2Book

EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "40"))
"""Examples per fuzz target (``HUB_FUZZ_EXAMPLES``)."""
INSTRUMENT_URLS = ("/products", "/exchangeInfo")
Item = tuple[str, str, str, int]  # kind (recv/http), url, data, ts_ns
Digest = tuple[bool, int]  # live, hash of the whole book
MAX_MUTATED = 64 * 1024
"""Inputs larger than this are replayed but not mutated (a 5 MB snapshot is slow to rewrite)."""


def _rebuild(levels: tuple[list[tuple[int, int]], list[tuple[int, int]]]) -> L2Book:
    book = L2Book()
    book.apply([(0, p, s) for p, s in levels[0]] + [(1, p, s) for p, s in levels[1]])
    return book


def _frozen(value: Any) -> bool:
    if isinstance(value, tuple):
        return all(_frozen(v) for v in value)
    return isinstance(value, str | int | Unit) or value is None


def clone(parser: ParserBase) -> ParserBase:
    """A deep copy of a parser; its dicts of immutable values (a Binance parser's units and
    filters of 1,800 symbols) are copied shallowly, which is most of the cost saved."""
    memo: dict[int, Any] = {}
    for value in vars(parser).values():
        if isinstance(value, dict) and all(_frozen(v) for v in value.values()):
            memo[id(value)] = dict(value)
    for sync in parser.books.values():  # compiled books cannot be deep-copied themselves
        memo[id(sync.book)] = _rebuild(sync.book.snapshot())
    return copy.deepcopy(parser, memo)


def capture_items(path: Path) -> list[Item]:
    return [  # binary frames (Huobi's gzip) as their text
        (x.kind, x.url, x.data or gzip.decompress(x.raw).decode(), x.ts_ns)
        for x in read_capture(path)
        if x.kind in ("recv", "http")
    ]


def told_what_was_sent(make: Callable[[], ParserBase], path: Path) -> Callable[[], ParserBase]:
    """``make``, then the capture's sent messages given to the parser (``on_sent``), as
    ``hub replay capture`` gives them: what was subscribed before any frame came."""

    def made() -> ParserBase:
        parser = make()
        for x in read_capture(path):
            if x.kind == "send":
                parser.on_sent(x.data)
        return parser

    return made


def feed(parser: ParserBase, kind: str, url: str, data: str | bytes, ts: int) -> list[Event]:
    if kind == "http":
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        return parser.on_http(url, text, ts)
    return parser.on_frame(data, ts)


def fed(parser: ParserBase, items: list[Item]) -> list[Event]:
    """What the parser publishes from a capture's items (``capture_items``), in order."""
    return [e for item in items for e in feed(parser, *item)]


class Raw(str):
    """A JSON number's exact text."""


HUGE: list[Any] = [
    Raw("9" * 70),
    Raw("1" + "0" * 400),  # orjson refuses it (infinite as a double); stdlib json reads it
    Raw("0." + "1" * 400),
    Raw("1e400"),
    Raw("-1e400"),
    Raw("-1"),
    Raw("-0.5"),
    Raw(str(2**63)),
    Raw(str(2**64)),
    "9" * 70,
    "1e400",
    "-1",
    "-0.00000001",
    "NaN",
    "nan",
    "Infinity",
    "-Infinity",
    str(2**63),
    "1" + "0" * 30 + ".5",
]


def dump(value: Any) -> str:
    """JSON text, numbers written exactly as read."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def load(text: str) -> Any:
    return json.loads(text, parse_float=Raw, parse_int=Raw)


def _json_kind(value: Any) -> str:
    if isinstance(value, Raw):
        return "number"
    if isinstance(value, bool) or value is None:
        return "literal"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*at, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*at, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        value = value[k]
    return value


OTHER_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2),
)


@st.composite
def mutate(
    draw: st.DrawFn, text: str, free_text: Callable[[tuple[Any, ...]], bool] = lambda _p: False
) -> tuple[str, str | bytes, bool]:
    """One mutation of a frame's text: ``(description, mutated text or bytes, lie)``, where
    ``lie`` says a free-form id string was replaced by another string."""
    raw = text.encode()
    kind = draw(st.sampled_from(["replace", "replace", "replace", "delete", "extra", "bytes"]))
    try:
        tree = load(text)
    except ValueError:
        kind = "bytes"
    if kind == "bytes":
        at = draw(st.integers(0, max(0, len(raw) - 1)))
        if draw(st.booleans()):
            return f"truncated at byte {at}", raw[:at], False
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c"]))
        return f"invalid UTF-8 at byte {at}", raw[:at] + junk + raw[at:], False
    paths = _paths(tree)
    if kind == "replace":
        path = draw(st.sampled_from(paths))
        old = _get(tree, path)
        if draw(st.booleans()):
            new = draw(st.sampled_from(HUGE))
        else:
            new = draw(OTHER_VALUES.filter(lambda v: _json_kind(v) != _json_kind(old)))
        if not path:
            return f"whole frame replaced by {new!r}", dump(new), False
        _get(tree, path[:-1])[path[-1]] = new
        lie = free_text(path) and type(old) is str and type(new) is str
        return f"{path} = {new!r}", dump(tree), lie
    dicts = [p for p in paths if isinstance(_get(tree, p), dict) and _get(tree, p)]
    if kind == "delete" and dicts:
        path = draw(st.sampled_from(dicts))
        node = _get(tree, path)
        key = draw(st.sampled_from(sorted(node)))
        del node[key]
        return f"{(*path, key)} removed", dump(tree), False
    dicts = [p for p in paths if isinstance(_get(tree, p), dict)]
    if not dicts:
        return "unchanged", text, False
    path = draw(st.sampled_from(dicts))
    node = _get(tree, path)
    key = draw(st.text(min_size=1, max_size=6).filter(lambda k: k not in node))
    node[key] = draw(st.one_of(OTHER_VALUES, st.sampled_from(HUGE)))
    return f"{(*path, key)} added", dump(tree), False


def digest(parser: ParserBase) -> dict[str, Digest]:
    out = {}
    for symbol, sync in parser.books.items():
        bids, asks = sync.book.snapshot()
        out[symbol] = (sync.live, hash((tuple(bids), tuple(asks))))
    return out


@dataclass
class Case:
    """One venue's fuzz target: inputs ``start`` to ``stop`` (exclusive) may be mutated."""

    name: str
    items: list[Item]
    make: Callable[[], ParserBase]
    start: int
    stop: int
    follow: int = 30
    chained: bool = True
    """The venue reveals a lost update by itself (sequences, checksums), so a dropped
    frame may leave a book live until that symbol's next update."""
    every: int = 20
    free_text: Callable[[tuple[Any, ...]], bool] = lambda _path: False
    """Whether the string at a path is a free-form id: another string there is a different,
    valid message (a lie no parser can see), so such a mutation is only checked for not
    raising."""
    _checkpoints: dict[int, ParserBase] = field(default_factory=dict)
    _reference: list[dict[str, Digest]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stop = min(self.stop, len(self.items) - 1)
        parser = self.make()
        for kind, url, data, ts in self.items[: self.start]:
            feed(parser, kind, url, data, ts)
        self._reference = [digest(parser)]  # index 0: before input ``start``
        for j in range(self.start, min(len(self.items), self.stop + self.follow + 1)):
            if (j - self.start) % self.every == 0:
                self._checkpoints[j] = clone(parser)
            feed(parser, *self.items[j])
            self._reference.append(digest(parser))

    def fuzz(
        self, data: st.DataObject, lies: Callable[[str, str | bytes], bool] | None = None
    ) -> None:
        """One example: an input of the window drawn, mutated, fed and checked. ``lies``
        tells (original, mutated) pairs that are another valid message of the venue's."""
        i = data.draw(st.sampled_from(self.candidates()), label="input")
        original = self.items[i][2]
        description, mutated, lie = data.draw(mutate(original, self.free_text), "mutation")
        note(f"{self.name} input {i} ({self.items[i][0]}): {description}")
        self.run(i, mutated, lie or (lies is not None and lies(original, mutated)))

    def candidates(self) -> list[int]:
        return [j for j in range(self.start, self.stop) if len(self.items[j][2]) <= MAX_MUTATED]

    def ref(self, j: int) -> dict[str, Digest]:
        """Books after input ``j`` (j = start - 1: before the window)."""
        return self._reference[j - self.start + 1]

    def run(self, i: int, mutated: str | bytes, lie: bool = False) -> None:
        """Replay to input ``i``, feed the mutated one and the clean ones after it, and check
        (an exception from the parser fails the example by itself)."""
        parser = self.replayed(i)
        kind, url, _data, ts = self.items[i]
        feed(parser, kind, url, mutated, ts)
        # Instrument data sets the units books are kept in: without it a parser falls back
        # to default units, and its books are the same books in other integers.
        exact = not lie and not (kind == "http" and url.endswith(INSTRUMENT_URLS))
        if exact:
            self.check(parser, i, i, "right after the mutated input")
        end = min(i + self.follow, len(self._reference) + self.start - 2)
        for j in range(i + 1, end + 1):
            feed(parser, *self.items[j])
        if exact:
            self.check(parser, i, end, f"{end - i} clean inputs later")

    def replayed(self, i: int) -> ParserBase:
        """A parser that has taken the clean inputs before ``i``."""
        base = max(j for j in self._checkpoints if j <= i)
        parser = clone(self._checkpoints[base])
        for j in range(base, i):
            feed(parser, *self.items[j])
        return parser

    def without(self, i: int, j: int) -> list[dict[str, Digest]]:
        """Books of a replay that lost input ``i``: after input ``i`` (index 0, the books
        before it) up to after input ``j``."""
        parser = self.replayed(i)
        out = [digest(parser)]
        for k in range(i + 1, j + 1):
            feed(parser, *self.items[k])
            out.append(digest(parser))
        return out

    def check(self, parser: ParserBase, i: int, j: int, when: str) -> None:
        """Every live book equals the clean replay's after input ``j``. For a chained venue
        it may instead be the book of a replay that lost input ``i``, for as long as that
        symbol has had no WebSocket update since: the venue's sequence reveals the loss
        only then. (Only REST answers may have changed it, as a snapshot taken after a
        lost update that was waiting for it does.)"""
        now, before, clean = digest(parser), self.ref(i - 1), self.ref(j)
        lost: list[dict[str, Digest]] | None = None
        for symbol, (live, book) in now.items():
            if not live or (symbol not in clean and symbol not in before):
                continue  # stale, or a book only the mutated input named
            if symbol in clean and book == clean[symbol][1]:
                continue
            if self.chained:
                lost = self.without(i, j) if lost is None else lost
                if self._lost_only(symbol, book, i, lost):
                    continue
            raise AssertionError(f"{self.name}: {symbol} is live but not exact {when}")

    def _lost_only(self, symbol: str, book: int, i: int, lost: list[dict[str, Digest]]) -> bool:
        """Whether ``book`` is live and the replay that lost input ``i`` (``without``) ends
        with it, no WebSocket input having changed that symbol's book since."""
        if lost[-1].get(symbol, (False, 0)) != (True, book):
            return False
        return all(
            self.items[i + k][0] == "http"
            for k in range(1, len(lost))
            if lost[k].get(symbol) != lost[k - 1].get(symbol)
        )


def fuzzed(test: Callable[..., None]) -> Callable[..., None]:
    """A fuzz test: ``test`` takes ``data`` (and any parameters) and calls ``Case.fuzz``,
    run for ``EXAMPLES`` examples with no deadline and no example database."""
    return settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(given(data=st.data())(test))
