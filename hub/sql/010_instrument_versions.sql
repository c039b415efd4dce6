-- Versioned instrument units: a venue that changes an instrument's tick or lot size changes
-- what the stored integers mean from then on, never before. Each version holds the units
-- and the canonical listing (hub.symbology) that applied from valid_from; the decimal views
-- take each row's units from the version in force at the row's time, so history is never
-- rescaled. The first version of an instrument applies from -infinity; a change applies
-- from just after the last row the recorder had stored for the stream when the change
-- arrived (recorder/writer.py). `instruments` stays the current units, now with the
-- canonical id beside the native symbol. Existing instruments become their first version.

CREATE TABLE IF NOT EXISTS instrument_versions (
    venue         text        NOT NULL,
    symbol        text        NOT NULL,
    valid_from    timestamptz NOT NULL,          -- -infinity: since the instrument was first seen
    tick_size     numeric     NOT NULL CHECK (tick_size > 0),
    lot_size      numeric     NOT NULL CHECK (lot_size > 0),
    canonical     text        NOT NULL DEFAULT '',   -- '' where the source names none
    kind          text        NOT NULL DEFAULT '',   -- spot, perp, future, option, equity
    base          text        NOT NULL DEFAULT '',
    quote         text        NOT NULL DEFAULT '',
    settle        text        NOT NULL DEFAULT '',
    expiry        text        NOT NULL DEFAULT '',   -- YYYYMMDD
    strike        text        NOT NULL DEFAULT '',
    option_right  text        NOT NULL DEFAULT '',   -- C or P
    contract_size text        NOT NULL DEFAULT '',
    inverse       boolean     NOT NULL DEFAULT false,
    announced_ns  bigint      NOT NULL DEFAULT 0,    -- when the feed published it (Kafka time)
    PRIMARY KEY (venue, symbol, valid_from)
);

ALTER TABLE instruments ADD COLUMN IF NOT EXISTS canonical text NOT NULL DEFAULT '';

INSERT INTO instrument_versions (venue, symbol, valid_from, tick_size, lot_size, announced_ns)
SELECT venue, symbol, '-infinity', tick_size, lot_size,
       (extract(epoch FROM updated_at) * 1000000)::bigint * 1000
FROM instruments
ON CONFLICT DO NOTHING;

-- Each version with the time it ends (infinity: still in force), and the id analysts join
-- on: the canonical id, or the venue's symbol where the source names none.
CREATE OR REPLACE VIEW instrument_units AS
SELECT venue, symbol, valid_from,
       coalesce(lead(valid_from) OVER (PARTITION BY venue, symbol ORDER BY valid_from),
                'infinity') AS valid_to,
       tick_size, lot_size, coalesce(nullif(canonical, ''), symbol) AS canonical, kind, base,
       quote, settle, expiry, strike, option_right, contract_size, inverse
FROM instrument_versions;

CREATE OR REPLACE VIEW trades_decimal AS
SELECT t.time, t.venue, t.symbol, t.seq, t.trade_id,
       t.price_ticks * u.tick_size AS price,
       t.size_lots * u.lot_size    AS size,
       CASE t.side WHEN 0 THEN 'buy' WHEN 1 THEN 'sell' ELSE 'none' END AS side,
       t.ts_event, t.ts_recv, t.epoch, u.canonical
FROM trades t
JOIN instrument_units u
  ON u.venue = t.venue AND u.symbol = t.symbol AND t.time >= u.valid_from AND t.time < u.valid_to;

CREATE OR REPLACE VIEW top_of_book_decimal AS
SELECT q.time, q.venue, q.symbol, q.seq,
       NULLIF(q.bid_ticks, 0) * u.tick_size AS bid,
       q.bid_lots * u.lot_size AS bid_size,
       NULLIF(q.ask_ticks, 0) * u.tick_size AS ask,
       q.ask_lots * u.lot_size AS ask_size,
       CASE WHEN q.bid_ticks > 0 AND q.ask_ticks > 0
            THEN (q.ask_ticks - q.bid_ticks) * u.tick_size END AS spread,
       CASE WHEN q.bid_ticks > 0 AND q.ask_ticks > 0
            THEN (q.ask_ticks + q.bid_ticks) * u.tick_size / 2 END AS mid,
       q.epoch, u.canonical
FROM top_of_book q
JOIN instrument_units u
  ON u.venue = q.venue AND u.symbol = q.symbol AND q.time >= u.valid_from AND q.time < u.valid_to;

-- A bar takes the units in force at its bucket's start; a bar whose bucket holds a unit
-- change mixes integers of two units (the recorder merges ticks): mixed_units says so, and
-- such a bucket is exact only from trades_decimal.
CREATE OR REPLACE VIEW bars_decimal AS
SELECT b.bucket, b.interval_s, b.venue, b.symbol,
       b.open * u.tick_size  AS open,
       b.high * u.tick_size  AS high,
       b.low * u.tick_size   AS low,
       b.close * u.tick_size AS close,
       b.volume * u.lot_size AS volume,
       b.notional * u.tick_size * u.lot_size AS notional,
       b.notional * u.tick_size / NULLIF(b.volume, 0) AS vwap,
       b.trades, u.canonical,
       u.valid_to < b.bucket + make_interval(secs => b.interval_s) AS mixed_units
FROM bars b
JOIN instrument_units u
  ON u.venue = b.venue AND u.symbol = b.symbol
 AND b.bucket >= u.valid_from AND b.bucket < u.valid_to;

CREATE OR REPLACE VIEW book_snapshots_decimal AS
SELECT s.time, s.venue, s.symbol, s.epoch, s.seq,
       ARRAY(SELECT p * u.tick_size FROM unnest(s.bid_ticks) WITH ORDINALITY AS x(p, n)
             ORDER BY n) AS bid_prices,
       ARRAY(SELECT q * u.lot_size FROM unnest(s.bid_lots) WITH ORDINALITY AS x(q, n)
             ORDER BY n) AS bid_sizes,
       ARRAY(SELECT p * u.tick_size FROM unnest(s.ask_ticks) WITH ORDINALITY AS x(p, n)
             ORDER BY n) AS ask_prices,
       ARRAY(SELECT q * u.lot_size FROM unnest(s.ask_lots) WITH ORDINALITY AS x(q, n)
             ORDER BY n) AS ask_sizes,
       u.canonical
FROM book_snapshots s
JOIN instrument_units u
  ON u.venue = s.venue AND u.symbol = s.symbol AND s.time >= u.valid_from AND s.time < u.valid_to;
