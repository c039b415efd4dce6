"""The hub's own venue: the simulated exchange and the co-located order path.

- ``simulator``: the simulated exchange (deterministic order flow through the matching
  engine, the public events it makes) and ``feed``: that exchange on its own, paced and
  published, when order entry is off.
- ``messages`` (the vocabulary: commands, reports, refusals), ``schema`` (the strict
  first reading of a message), ``checks`` and ``risk`` (pre-trade limits and int64
  bounds), ``venue`` (checks, matching, reports: sans-I/O).
- ``journal`` (the log file and its codec), ``kafka_log`` (the log as a Kafka topic),
  ``replay`` (reading either back, refusing what no longer passes), ``store``
  (execution reports into PostgreSQL), ``session`` (one connection's outbox and writer)
  and ``gateway`` (the order-entry server, group commit and delivery).
"""

import hub  # noqa: F401  (hub.compiled's finder, before any of this package's modules loads)
