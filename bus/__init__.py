"""The transport between the rooms: how events move and where the latest books wait.

``local`` is the embedded hub's in-process bus and memory snapshot store, and the
``Publisher`` / ``SnapshotStore`` interfaces; ``kafka`` the topics (named by the
event table in ``hub.events``), producer and consumers of the distributed hub, and
``kafka_publish`` the feed's publisher that buffers through a broker outage;
``redis_store`` the validated snapshot store in Redis; ``output`` the ``FeedOutput``
every feed source publishes through (instruments announced, books kept, snapshots
stored, events counted) and the ``TopTracker`` that decides top-of-book events.
"""
