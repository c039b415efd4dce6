"""Clients of the hub's public WebSocket protocols.

``market.py``: the market-data client, whose mirrors keep exact integer books from a
fanout node's snapshots and deltas and check every seq and checksum (SequenceGap,
ChecksumMismatch, OrderBookMismatch); ``subscribe.py``: ``hub subscribe``, a live
view printed from those mirrors; ``orders.py``: a small order-entry client;
``analytics.py``: the recorded data as pandas DataFrames, for analysts.
"""
