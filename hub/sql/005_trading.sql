-- The order path's records for queries and end-of-day reports, written off the hot path
-- from the execution reports (the journal is the source of truth; a restart re-sends
-- every report and the key makes that harmless).

CREATE TABLE IF NOT EXISTS accounts (
    venue   text    NOT NULL,
    id      bigint  NOT NULL,
    name    text    NOT NULL,
    PRIMARY KEY (venue, id)
);

CREATE TABLE IF NOT EXISTS executions (
    venue       text        NOT NULL,
    account     bigint      NOT NULL,
    seq         bigint      NOT NULL,            -- the account's report seq
    time        timestamptz NOT NULL,
    cl_ord_id   text        NOT NULL,
    order_id    bigint      NOT NULL,
    symbol      text        NOT NULL,
    exec_type   text        NOT NULL,            -- accepted, partial_fill, fill, cancelled, ...
    side        text        NOT NULL,
    order_type  text        NOT NULL,
    price       numeric,                         -- the order's limit price (null: market)
    last_qty    numeric     NOT NULL,
    last_price  numeric,
    leaves_qty  numeric     NOT NULL,
    cum_qty     numeric     NOT NULL,
    reason      text,
    position    numeric     NOT NULL,            -- the account's position after this report
    ts_event    bigint      NOT NULL,
    PRIMARY KEY (venue, account, seq)
);

CREATE INDEX IF NOT EXISTS executions_order ON executions (venue, account, order_id, seq);

CREATE OR REPLACE VIEW fills AS
SELECT venue, account, seq, time, cl_ord_id, order_id, symbol, side, last_qty AS qty,
       last_price AS price, position
FROM executions
WHERE last_qty > 0;

CREATE OR REPLACE VIEW orders AS
SELECT DISTINCT ON (venue, account, order_id)
       venue, account, order_id, cl_ord_id, symbol, side, order_type, price,
       exec_type AS last_exec, leaves_qty, cum_qty,
       exec_type NOT IN ('fill', 'cancelled', 'rejected') AS open, time AS updated
FROM executions
ORDER BY venue, account, order_id, seq DESC;

CREATE OR REPLACE VIEW positions AS
SELECT DISTINCT ON (venue, account, symbol) venue, account, symbol, position, time AS updated
FROM executions
ORDER BY venue, account, symbol, seq DESC;
