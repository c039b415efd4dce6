-- Instruments and the trades hypertable.
-- Prices and sizes are stored exactly as integer ticks and lots; the
-- *_decimal views turn them into exact NUMERIC with the instrument's units.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS instruments (
    venue      text        NOT NULL,
    symbol     text        NOT NULL,
    tick_size  numeric     NOT NULL CHECK (tick_size > 0),
    lot_size   numeric     NOT NULL CHECK (lot_size > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (venue, symbol)
);

CREATE TABLE IF NOT EXISTS trades (
    time        timestamptz NOT NULL,            -- venue event time (microseconds)
    venue       text        NOT NULL,
    symbol      text        NOT NULL,
    seq         bigint      NOT NULL,            -- the stream's trade seq
    trade_id    text        NOT NULL,            -- the venue's trade id
    price_ticks bigint      NOT NULL CHECK (price_ticks > 0),
    size_lots   bigint      NOT NULL CHECK (size_lots > 0),
    side        smallint    NOT NULL CHECK (side IN (0, 1)),   -- aggressor: 0 buy, 1 sell
    ts_event    bigint      NOT NULL,            -- venue event time, ns
    ts_recv     bigint      NOT NULL,            -- our receive time, ns
    -- Re-delivery from Kafka (at-least-once) hits this key and changes nothing.
    UNIQUE (venue, symbol, trade_id, time)
);

SELECT create_hypertable('trades', 'time', chunk_time_interval => interval '1 day',
                         if_not_exists => TRUE);

CREATE INDEX IF NOT EXISTS trades_symbol_time ON trades (venue, symbol, time DESC);

CREATE OR REPLACE VIEW trades_decimal AS
SELECT t.time, t.venue, t.symbol, t.seq, t.trade_id,
       t.price_ticks * i.tick_size AS price,
       t.size_lots * i.lot_size    AS size,
       CASE t.side WHEN 0 THEN 'buy' ELSE 'sell' END AS side,
       t.ts_event, t.ts_recv
FROM trades t
JOIN instruments i USING (venue, symbol);
