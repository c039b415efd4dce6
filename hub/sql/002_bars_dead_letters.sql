-- OHLCV bars, recomputed by the recorder from the stored trades (so they stay exact,
-- late and out-of-order trades included), and the dead-letter table.

CREATE TABLE IF NOT EXISTS bars (
    bucket     timestamptz NOT NULL,             -- bucket start (UTC)
    interval_s integer     NOT NULL CHECK (interval_s IN (1, 60, 300, 3600, 86400)),
    venue      text        NOT NULL,
    symbol     text        NOT NULL,
    open       bigint      NOT NULL,             -- ticks
    high       bigint      NOT NULL,
    low        bigint      NOT NULL,
    close      bigint      NOT NULL,
    volume     numeric     NOT NULL,             -- lots
    notional   numeric     NOT NULL,             -- sum(price ticks * size lots)
    trades     bigint      NOT NULL,
    PRIMARY KEY (venue, symbol, interval_s, bucket)
);

SELECT create_hypertable('bars', 'bucket', chunk_time_interval => interval '7 days',
                         if_not_exists => TRUE);

CREATE OR REPLACE VIEW bars_decimal AS
SELECT b.bucket, b.interval_s, b.venue, b.symbol,
       b.open * i.tick_size  AS open,
       b.high * i.tick_size  AS high,
       b.low * i.tick_size   AS low,
       b.close * i.tick_size AS close,
       b.volume * i.lot_size AS volume,
       b.notional * i.tick_size * i.lot_size AS notional,
       b.notional * i.tick_size / NULLIF(b.volume, 0) AS vwap,
       b.trades
FROM bars b
JOIN instruments i USING (venue, symbol);

-- Messages that were not stored as normal rows, with the reason. Keyed by their
-- Kafka position, so a re-delivered bad message is recorded once.
CREATE TABLE IF NOT EXISTS dead_letters (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    reason      text        NOT NULL,
    raw         bytea       NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
