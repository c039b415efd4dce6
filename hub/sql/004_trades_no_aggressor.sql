-- Auction and cross prints (ITCH Q, Databento trades with side N) have no aggressor:
-- side 2. The check and the decimal view learn the third value.

ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_side_check;
ALTER TABLE trades ADD CONSTRAINT trades_side_check CHECK (side IN (0, 1, 2));

CREATE OR REPLACE VIEW trades_decimal AS
SELECT t.time, t.venue, t.symbol, t.seq, t.trade_id,
       t.price_ticks * i.tick_size AS price,
       t.size_lots * i.lot_size    AS size,
       CASE t.side WHEN 0 THEN 'buy' WHEN 1 THEN 'sell' ELSE 'none' END AS side,
       t.ts_event, t.ts_recv
FROM trades t
JOIN instruments i USING (venue, symbol);
