-- Periodic top-N book snapshots (the feed publishes the top 10 levels of each changed book
-- every feed.snapshot_interval_ms): depth statistics over time. Keyed by the book stream's
-- seq, so the same book state is stored once however often it is sent.

CREATE TABLE IF NOT EXISTS book_snapshots (
    time        timestamptz NOT NULL,            -- event time of the last update included
    venue       text        NOT NULL,
    symbol      text        NOT NULL,
    seq         bigint      NOT NULL,            -- the book stream's seq it is as of
    bid_ticks   bigint[]    NOT NULL,            -- best first
    bid_lots    bigint[]    NOT NULL,
    ask_ticks   bigint[]    NOT NULL,            -- best first
    ask_lots    bigint[]    NOT NULL,
    UNIQUE (venue, symbol, time, seq)
);

SELECT create_hypertable('book_snapshots', 'time', chunk_time_interval => interval '1 day',
                         if_not_exists => TRUE);
