-- Top-of-book changes: one row per book update that moved the best bid or ask, keyed by
-- the book stream's seq so re-delivery changes nothing. Spread and touch-size statistics
-- over time come from here.

CREATE TABLE IF NOT EXISTS top_of_book (
    time        timestamptz NOT NULL,            -- venue event time of the update
    venue       text        NOT NULL,
    symbol      text        NOT NULL,
    seq         bigint      NOT NULL,            -- the book stream's seq
    bid_ticks   bigint      NOT NULL,            -- 0 with size 0: no bids
    bid_lots    bigint      NOT NULL,
    ask_ticks   bigint      NOT NULL,            -- 0 with size 0: no asks
    ask_lots    bigint      NOT NULL,
    UNIQUE (venue, symbol, time, seq)
);

SELECT create_hypertable('top_of_book', 'time', chunk_time_interval => interval '1 day',
                         if_not_exists => TRUE);

CREATE OR REPLACE VIEW top_of_book_decimal AS
SELECT q.time, q.venue, q.symbol, q.seq,
       NULLIF(q.bid_ticks, 0) * i.tick_size AS bid,
       q.bid_lots * i.lot_size AS bid_size,
       NULLIF(q.ask_ticks, 0) * i.tick_size AS ask,
       q.ask_lots * i.lot_size AS ask_size,
       CASE WHEN q.bid_ticks > 0 AND q.ask_ticks > 0
            THEN (q.ask_ticks - q.bid_ticks) * i.tick_size END AS spread,
       CASE WHEN q.bid_ticks > 0 AND q.ask_ticks > 0
            THEN (q.ask_ticks + q.bid_ticks) * i.tick_size / 2 END AS mid
FROM top_of_book q
JOIN instruments i USING (venue, symbol);
