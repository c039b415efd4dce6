"""Which stream a subscription names: the venue's own symbol or the canonical id.

The node's one resolver, ``(venue or None, name) -> stream``, kept up to date as
streams appear and their instruments (hub.events.Instrument, with the canonical id
of hub.symbology) arrive from the source or the snapshot store. The rules
(docs/protocol.md, "Symbology"):

- names and venues compare case-insensitively (``btc-usd``, ``xbt/usd``, ``kraken``);
- on one venue, a stream whose native symbol is the name wins over streams whose
  canonical id is the name (and an exact-case native match over other cases);
- without a venue the name must pick one stream across the node, else the entry is
  refused ``ambiguous_symbol`` with the ``choices`` (venue and native symbol each);
  with a venue it must pick one stream there;
- a venue the node carries no stream of is ``unknown_venue``; a name that picks
  nothing is ``unknown_symbol`` (on a given venue, the reason names the venues that
  do carry it).

A stream is found by its canonical id once the node knows its instrument; by its
native symbol from its first event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fanout.protocol import ProtocolError

if TYPE_CHECKING:
    from fanout.stream import BookStream, StreamKey

MAX_CHOICES = 32
"""Most choices an ``ambiguous_symbol`` refusal lists (the reason text names fewer)."""
NAMED = 6
"""Choices or venues a refusal's reason text names before ``...``."""


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:NAMED])
    return shown + (f" and {len(items) - NAMED} more" if len(items) > NAMED else "")


class Symbols:
    """Every stream of a node by upper-cased native symbol and canonical id."""

    def __init__(self) -> None:
        self.venues: dict[str, str] = {}
        """Each venue by its upper-cased name, as the streams spell it."""
        self.native: dict[str, list[BookStream]] = {}
        self.canonical: dict[str, list[BookStream]] = {}
        self._canon: dict[StreamKey, str] = {}
        """The canonical id each stream is indexed under."""

    def add(self, stream: BookStream) -> None:
        """Index a new stream (and its canonical id when it has an instrument already)."""
        self.venues.setdefault(stream.venue.upper(), stream.venue)
        self.native.setdefault(stream.symbol.upper(), []).append(stream)
        self.listed(stream)

    def listed(self, stream: BookStream) -> None:
        """Index ``stream`` under its instrument's canonical id (again, if it changed)."""
        inst = stream.instrument
        new = inst.canonical.upper() if inst is not None else ""
        old = self._canon.get(stream.key, "")
        if new == old:
            return
        if old:
            held = self.canonical[old]
            held.remove(stream)
            if not held:
                del self.canonical[old]
        if new:
            self.canonical.setdefault(new, []).append(stream)
            self._canon[stream.key] = new
        else:
            del self._canon[stream.key]

    def matches(self, name: str, venue: str | None = None) -> list[BookStream]:
        """The streams ``name`` picks (on ``venue``, upper case, when given), by key: per
        venue its native matches when it has any, else its canonical ones."""
        up = name.upper()
        per_venue: dict[str, list[BookStream]] = {}
        for s in self.native.get(up, ()):
            if venue is None or s.venue.upper() == venue:
                per_venue.setdefault(s.venue, []).append(s)
        for v, found in per_venue.items():
            exact = [s for s in found if s.symbol == name]
            if exact:
                per_venue[v] = exact
        natively = set(per_venue)
        for s in self.canonical.get(up, ()):
            if s.venue not in natively and (venue is None or s.venue.upper() == venue):
                per_venue.setdefault(s.venue, []).append(s)
        return sorted((s for found in per_venue.values() for s in found), key=lambda s: s.key)

    def resolve(self, venue: str | None, name: str) -> BookStream:
        """The one stream ``(venue, name)`` names; ProtocolError ``unknown_venue``,
        ``unknown_symbol`` or ``ambiguous_symbol`` (with ``choices``) otherwise."""
        where = None
        if venue is not None:
            where = venue.upper()
            if where not in self.venues:
                raise ProtocolError(
                    "unknown_venue",
                    f"no venue {venue!r} on this node; it carries "
                    f"{_names(sorted(self.venues.values())) or 'none yet'}",
                )
        found = self.matches(name, where)
        if len(found) == 1:
            return found[0]
        if not found:
            reason = f"no stream for symbol {name!r}"
            if where is not None:
                reason += f" on {self.venues[where]}"
                elsewhere = sorted({s.venue for s in self.matches(name)})
                if elsewhere:
                    reason += f"; it is on {_names(elsewhere)}"
            raise ProtocolError("unknown_symbol", reason)
        choices = [f"{s.venue} {s.symbol}" for s in found]
        give = "give 'venue'" if len({s.venue for s in found}) > 1 else "give the venue's symbol"
        raise ProtocolError(
            "ambiguous_symbol",
            f"{name!r} names {len(found)} streams: {_names(choices)}; {give}",
            {"choices": [{"venue": s.venue, "symbol": s.symbol} for s in found[:MAX_CHOICES]]},
        )
