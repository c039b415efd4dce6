"""The fanout nodes: traders' WebSocket subscriptions served from the market-data bus.

Each module has one job, from the wire inwards:

- ``protocol``: client-request parsing and server-message encoding (docs/protocol.md);
- ``auth``: the key table, grants and credentials of a handshake;
- ``session``: one connection's session, sans-I/O (authentication, limits, requests,
  subscriptions);
- ``stream``: per-book sync (snapshot + buffered deltas), top-N views, candles;
- ``ticker``: 24 h rolling statistics of a stream's trades (the ticker channel);
- ``delivery``: feeds (one encoded variant of a channel, with its seq and resume
  history), groups of clients sharing frames, a lagging client's conflated queue;
- ``views``: the node's feeds, shared, reference-counted and capped;
- ``sender``: when and how messages reach the sockets; slow clients;
- ``node``: the node itself (source events, book sync, the WebSocket server);
- ``rest``: the REST API on the same port (docs/rest.md), ``openapi`` its OpenAPI 3.1
  document, ``history``: candle history from the recorder's TimescaleDB;
- ``sources``: the in-process bus or Kafka as the node's source; ``web/``: the web page.
"""
