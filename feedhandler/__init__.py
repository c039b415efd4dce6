"""Feed handlers: venue traffic and market-data files in, the hub's integer events out.

``venues/`` holds one sans-I/O parser per live venue (Kraken, Binance, Coinbase
Advanced Trade and Exchange, Coinbase level 3), the asyncio runner around them and
the venue table; ``sync.py`` is the one snapshot + buffered-deltas + gap and checksum
engine they all use; ``frames.py`` reads venue frames field by field, refusing bad
ones as ``MalformedFrame``; ``files/`` replays and records files (captures, ITCH,
LOBSTER, Databento). Nothing here publishes: the events go to whatever output the
app wires in (bus.output.FeedOutput).
"""
