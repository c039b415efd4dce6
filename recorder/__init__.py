"""The recorder: Kafka → TimescaleDB, every message stored exactly once.

``service.py`` consumes the trades, instruments, bbo and depth topics, writes each
batch in one transaction and commits offsets after it, retrying while the database
is unreachable; ``writer.py`` is that transaction, with the bars recomputed from the
stored trades; ``retention.py`` drops old raw trades on either TimescaleDB edition.
"""
