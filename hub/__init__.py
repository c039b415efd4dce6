"""The hub's vocabulary, shared by every room above it (bus, the services, app).

``events`` declares every event once (kind tag, Kafka topic, fields) and derives
its wire encoding; ``orders`` holds the order-level (L3) helpers around them.
``config`` (typed, frozen settings) and ``tomlfile`` read the hub's files;
``errors`` draws the error tree; ``decimals`` and ``times`` convert venue
strings to integer ticks, lots and nanoseconds; ``wire`` checks client messages
on both ports; ``auth`` holds credentials and rate limits; ``ops`` the /metrics
and /healthz endpoints; ``logs``, ``backoff`` and ``db`` (PostgreSQL, with the
migrations in ``sql/``) the plumbing every process shares; ``compiled`` names the order
path's modules built by Cython and imports a module's source wherever its build is out of
date (installed here, before any of them loads). Of the other rooms it imports only the
book core (tests/test_layout.py checks it).
"""

from hub import compiled

compiled.install()
