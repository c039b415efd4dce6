-- Bars are merged with each batch's new trades instead of recomputed from the stored
-- ones: a bar keeps the (ts_event, epoch, seq) of its open and close trades, so a later
-- trade knows whether it comes before the open or after the close. Bars stored before
-- get their keys from their trades (NULL where retention dropped them: such a bar keeps
-- its open and close).

ALTER TABLE bars ADD COLUMN IF NOT EXISTS open_key bigint[];
ALTER TABLE bars ADD COLUMN IF NOT EXISTS close_key bigint[];

UPDATE bars b SET (open_key, close_key) = (
    SELECT min(ARRAY[t.ts_event, t.epoch, t.seq]), max(ARRAY[t.ts_event, t.epoch, t.seq])
    FROM trades t
    WHERE t.venue = b.venue AND t.symbol = b.symbol
      AND t.time >= b.bucket AND t.time < b.bucket + make_interval(secs => b.interval_s)
)
WHERE b.open_key IS NULL;

