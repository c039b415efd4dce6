"""The recorder: Kafka → TimescaleDB, every message stored exactly once.

``service.py`` consumes the trades, instruments, bbo and depth topics, writes each
batch in one transaction and commits offsets after it, retrying while the database
is unreachable; ``writer.py`` is that transaction, with each batch's new trades merged
into the bars; ``units.py`` keeps each instrument's unit versions (the tick and lot
that applied at each time); ``retention.py`` drops old raw trades on either
TimescaleDB edition.
"""
