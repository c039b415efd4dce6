"""What every venue parser shares: the runner's interface, bad-input accounting, JSON.

A parser is sans-I/O: frames and REST bodies in, normalized events out. It
also says what to send after connecting (``subscribe``), what brings stale
symbols back over the WebSocket (``recover``: venues that resend a snapshot
on resubscribe) and which REST resources do (``snapshot_urls``: venues whose
snapshots come over HTTP).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from prometheus_client import Counter

from feedhandler.frames import MalformedFrame
from feedhandler.sync import BookSync
from hub.decimals import Unit
from hub.events import Event, Instrument
from hub.ops import metrics
from hub.symbology import Listing, SymbologyError, listed, spot

METRICS = metrics("feed")

log = logging.getLogger("hub.feed")
ERRORS_KEPT = 100
"""Recent bad-input descriptions a parser keeps (all are counted)."""
LOGGED_EVERY = 1000
"""After the first ``ERRORS_LOGGED`` bad inputs, only every this-many-th is logged."""
ERRORS_LOGGED = 20
MALFORMED = Counter(
    "hub_feed_malformed_frames",
    "Venue frames and REST answers refused as malformed, by reason",
    ["venue", "reason"],
    registry=METRICS,
)


class ParserBase:
    """State every venue parser keeps; subclasses implement ``_frame`` and ``_http``.

    ``on_frame`` and ``on_http`` are total: a subclass reads every value through
    feedhandler.frames and raises ``MalformedFrame`` before it changes any state,
    and the frame is counted, logged and dropped here; the books it could have
    changed go stale, so the runner resyncs them. ``chained`` says what happens
    when the frame cannot be pinned on a symbol: venues whose every book stream
    reveals a lost update by itself (per-symbol sequence numbers or checksums) rely
    on that; the others invalidate every book of the connection."""

    venue = ""
    chained = True
    heartbeat_s = 0.0
    """Seconds between ``heartbeat`` messages (0: WebSocket pings are all the venue needs)."""

    def __init__(self) -> None:
        self.books: dict[str, BookSync] = {}
        self.trades: dict[str, int] = {}
        self.malformed = 0
        self.reasons: dict[str, int] = {}
        """Malformed frames and REST answers per reason."""
        self.errors: deque[str] = deque(maxlen=ERRORS_KEPT)
        self.listings: dict[str, Listing] = {}
        """Each native symbol's canonical listing (hub.symbology), filled as the parser
        learns the instrument (REST metadata or the symbol itself)."""
        self._loads = json_loads()
        self._touched: set[str] = set()
        self._emitted: list[Event] = []
        """Every event the books produced for the current input (see ``internal_error``)."""
        self._answers: list[str] = []

    def on_frame(self, frame: str | bytes, ts_recv: int) -> list[Event]:
        """One WebSocket frame in, normalized events out; bad frames are counted, never raised."""
        self._touched.clear()
        self._emitted.clear()
        if isinstance(frame, bytes):
            try:
                text = frame.decode()
            except UnicodeDecodeError as exc:
                bad = MalformedFrame("json", f"not UTF-8 ({exc.reason} at byte {exc.start})")
                return self.malformed_input(frame.decode("utf-8", "replace"), bad, ts_recv)
        else:
            text = frame
        try:
            return self._frame(text, ts_recv)
        except MalformedFrame as exc:
            return self.malformed_input(text, exc, ts_recv)

    def on_http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        """One REST answer (instrument data, snapshots) in, events out; never raises."""
        self._touched.clear()
        self._emitted.clear()
        try:
            return self._http(url, body, ts_recv)
        except MalformedFrame as exc:
            return self.malformed_input(body, exc, ts_recv, f"REST answer from {url}")

    def on_sent(self, message: str) -> None:
        """A message the client sent on the connection (a replay hands over the capture's
        ``send`` lines): what a subscription says that the frames do not (Kraken's book
        depth). Never raises; the default ignores it."""

    def _frame(self, text: str, ts_recv: int) -> list[Event]:
        raise NotImplementedError

    def _http(self, url: str, body: str, ts_recv: int) -> list[Event]:
        return []

    def _json(self, text: str) -> Any:
        try:
            return self._loads(text)
        except (ValueError, RecursionError):
            raise MalformedFrame("json", "not JSON") from None

    def units_for(self, symbol: str) -> tuple[Unit, Unit]:
        """Tick and lot units of a symbol, for decimal output."""
        raise NotImplementedError

    def extra_stats(self, symbol: str) -> dict[str, Any]:
        """Venue-specific checks to add to a replay summary."""
        return {}

    def instrument_urls(self, rest: str) -> list[str]:
        """REST resources with instrument data (precisions), fetched before connecting."""
        return []

    def subscribe(self, symbols: list[str]) -> list[str]:
        """Messages to send right after connecting."""
        return []

    def token_url(self, rest: str) -> str:
        """A REST URL to POST before each connection whose answer names the WebSocket
        address to connect to (KuCoin's ``bullet-public``); "" when the venue needs none."""
        return ""

    def connect_url(self, body: str) -> str:
        """The WebSocket address in the answer to ``token_url`` (refused with
        ``MalformedFrame``); it may also set ``heartbeat_s`` from the answer."""
        raise MalformedFrame("shape", "this venue takes no connect token")

    def heartbeat(self) -> list[str]:
        """Keep-alive messages the venue asks for every ``heartbeat_s`` seconds."""
        return []

    def answers(self) -> list[str]:
        """Messages the frames parsed so far ask to be answered with right away (Deribit's
        ``test_request``), each returned once; the runner sends them after each frame."""
        out, self._answers = self._answers, []
        return out

    def recover(self, symbols: list[str]) -> list[str]:
        """Messages that make the venue resend snapshots of these stale symbols."""
        return []

    def snapshot_urls(self, rest: str, symbols: list[str]) -> list[str]:
        """REST URLs whose answers bring these stale symbols back."""
        return []

    def rest_headers(self, url: str) -> dict[str, str]:
        """Headers for a REST request (a venue signs them when it needs to)."""
        return {}

    def redact(self, message: str) -> str:
        """A sent message as it may be logged or captured (credentials blanked)."""
        return message

    def resync(self, symbol: str, reason: str, ts_recv: int) -> list[Event]:
        """Mark one book stale so the runner brings it back from a fresh snapshot."""
        sync = self.books.get(symbol)
        return sync.invalidate(reason, ts_recv) if sync is not None else []

    def malformed_input(
        self, text: str, exc: MalformedFrame, ts_recv: int, where: str = "frame"
    ) -> list[Event]:
        """Count and log refused input (with the offending text, truncated); invalidate the
        books it could have changed; return their ``stale`` statuses."""
        self.malformed += 1
        self.reasons[exc.reason] = self.reasons.get(exc.reason, 0) + 1
        MALFORMED.labels(self.venue, exc.reason).inc()
        self.errors.append(f"{where}: {exc}: {text[:120]}")
        symbols = exc.symbols
        if symbols is None:
            symbols = () if self.chained else tuple(self.books)
        if self.malformed <= ERRORS_LOGGED or self.malformed % LOGGED_EVERY == 0:
            log.warning(
                "malformed input from venue dropped",
                extra={
                    "venue": self.venue,
                    "where": where,
                    "reason": exc.reason,
                    "why": exc.detail,
                    "resync": list(symbols),
                    "text": text[:200],
                    "count": self.malformed,
                },
            )
        out: list[Event] = []
        for symbol in symbols:
            out += self.resync(symbol, f"malformed {exc.reason}", ts_recv)
        return out

    def internal_error(self, text: str | bytes, exc: Exception, ts_recv: int) -> list[Event]:
        """The last line of defence (the runner and replay call it): the parser raised
        something it should not have. Counted as ``internal``, logged with the traceback;
        the book events the input had already produced are returned (their seqs are
        taken, so consumers must see them), then every book the input touched (all of
        them if unknown) goes stale and resyncs. Trades of that input are lost."""
        produced = list(self._emitted)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        log.error(
            "venue parser failed on a frame",
            exc_info=exc,
            extra={"venue": self.venue, "text": text[:200]},
        )
        touched = tuple(self._touched) or tuple(self.books)
        detail = f"{type(exc).__name__}: {exc}"
        bad = MalformedFrame("internal", detail, touched)
        return produced + self.malformed_input(text, bad, ts_recv)

    def _list_spot(self, venue: str, symbol: str, base: str, quote: str) -> None:
        """A spot pair's canonical listing, once (none for codes the symbology cannot name)."""
        if symbol not in self.listings:
            with contextlib.suppress(SymbologyError):
                self.listings[symbol] = spot(venue, symbol, base, quote)

    def _new_units(
        self,
        units: dict[str, tuple[Unit, Unit]],
        symbol: str,
        new: tuple[Unit, Unit],
        ts_recv: int,
    ) -> list[Event]:
        """Keep a symbol's (tick, lot) from instrument data; a change under an existing book
        resyncs it (its integers are in the old units)."""
        known = units.get(symbol)
        units[symbol] = new
        if known is None or symbol not in self.books:
            return []
        if (known[0].text, known[1].text) == (new[0].text, new[1].text):
            return []  # the same precisions fetched again
        return self.resync(symbol, "instrument changed", ts_recv)

    def _touch(self, symbol: str) -> None:
        """Note that the current frame reached this symbol's book (for ``internal_error``)."""
        self._touched.add(symbol)

    def _trade_seq(self, symbol: str) -> int:
        seq = self.trades[symbol] = self.trades.get(symbol, 0) + 1
        return seq


Top = tuple[int, int, int, int]
"""A book's top: bid price, bid size, ask price, ask size (0, 0 for an empty side)."""
TOPS_KEPT = 4096
"""Book tops and tickers kept per symbol for a comparison of the two (by update id, the
oldest go first): a venue's two streams are never further apart than that."""


def keep_top(kept: dict[int, Top], update: int, top: Top) -> None:
    """Keep ``top`` at its update id, the oldest dropped past ``TOPS_KEPT``."""
    kept[update] = top
    if len(kept) > TOPS_KEPT:
        del kept[next(iter(kept))]


def json_loads() -> Callable[[str | bytes], Any]:
    """orjson, or the standard library's json with HUB_FEED_JSON=stdlib (the benchmark's
    baseline). Both raise json.JSONDecodeError subclasses on bad input."""
    if os.environ.get("HUB_FEED_JSON") == "stdlib":
        return json.loads
    return orjson.loads


@functools.lru_cache(maxsize=64)
def decimals_unit(decimals: int) -> Unit:
    """The unit 10**-decimals ("0.01" for 2), one object per precision (so parsers that
    look units up per frame do not build them again)."""
    return Unit("0." + "0" * (decimals - 1) + "1" if decimals else "1")


def instrument_from(parser: ParserBase) -> Callable[[str, str], Instrument | None]:
    """A stream's instrument from the venue parser's units (and listing), once it knows
    them; None before (the live runner and every replay of a capture use it)."""

    def lookup(venue: str, symbol: str) -> Instrument | None:
        try:
            tick, lot = parser.units_for(symbol)
        except KeyError:
            return None
        return listed(Instrument(venue, symbol, tick.text, lot.text), parser.listings.get(symbol))

    return lookup
