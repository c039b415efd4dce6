-- Stream epochs: a feed restart that cannot continue a stream exactly starts a new epoch
-- and its seqs start again at 1, so (venue, symbol, epoch, seq) names one event for ever.
-- Every table keyed by a stream's seq gains the epoch in its key; rows stored before
-- epochs existed keep epoch 0. Trades were keyed by trade id, which restarts with the
-- stream too: now by the stream position, the trade id is data.

ALTER TABLE trades ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_stream_time_key;
ALTER TABLE trades ADD CONSTRAINT trades_stream_time_key UNIQUE (venue, symbol, time, epoch, seq);

ALTER TABLE top_of_book ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE top_of_book DROP CONSTRAINT IF EXISTS top_of_book_venue_symbol_time_seq_key;
ALTER TABLE top_of_book ADD CONSTRAINT top_of_book_stream_time_key
    UNIQUE (venue, symbol, time, epoch, seq);

ALTER TABLE book_snapshots ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE book_snapshots DROP CONSTRAINT IF EXISTS book_snapshots_venue_symbol_time_seq_key;
ALTER TABLE book_snapshots ADD CONSTRAINT book_snapshots_stream_time_key
    UNIQUE (venue, symbol, time, epoch, seq);

CREATE OR REPLACE VIEW trades_decimal AS
SELECT t.time, t.venue, t.symbol, t.seq, t.trade_id,
       t.price_ticks * i.tick_size AS price,
       t.size_lots * i.lot_size    AS size,
       CASE t.side WHEN 0 THEN 'buy' WHEN 1 THEN 'sell' ELSE 'none' END AS side,
       t.ts_event, t.ts_recv, t.epoch
FROM trades t
JOIN instruments i USING (venue, symbol);

CREATE OR REPLACE VIEW top_of_book_decimal AS
SELECT q.time, q.venue, q.symbol, q.seq,
       NULLIF(q.bid_ticks, 0) * i.tick_size AS bid,
       q.bid_lots * i.lot_size AS bid_size,
       NULLIF(q.ask_ticks, 0) * i.tick_size AS ask,
       q.ask_lots * i.lot_size AS ask_size,
       CASE WHEN q.bid_ticks > 0 AND q.ask_ticks > 0
            THEN (q.ask_ticks - q.bid_ticks) * i.tick_size END AS spread,
       CASE WHEN q.bid_ticks > 0 AND q.ask_ticks > 0
            THEN (q.ask_ticks + q.bid_ticks) * i.tick_size / 2 END AS mid,
       q.epoch
FROM top_of_book q
JOIN instruments i USING (venue, symbol);
