-- yktgw spool, version 4: the durable webhook outbox.
-- Events are written in the transaction that settles a batch (never lost by a
-- crash); the webhook worker routes each to the configured endpoints covering
-- the batch's tenant and delivers it at least once, with retries.
CREATE TABLE outbox_events (
    id         INTEGER PRIMARY KEY,
    event_id   TEXT    NOT NULL UNIQUE,  -- stable across retries: receivers dedupe on it
    kind       TEXT    NOT NULL,         -- batch.settled | batch.results
    batch      INTEGER NOT NULL REFERENCES batches(id),
    batch_id   TEXT    NOT NULL,
    tenant     TEXT    NOT NULL,
    page       INTEGER NOT NULL DEFAULT 0,  -- batch.results: 1..pages
    pages      INTEGER NOT NULL DEFAULT 0,
    first_seq  INTEGER NOT NULL DEFAULT 0,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    routed_at  INTEGER NOT NULL DEFAULT 0   -- 0 until the worker assigned endpoints
);
CREATE INDEX outbox_events_unrouted ON outbox_events(routed_at, id);

-- One row per (event, endpoint url): the delivery of that event there.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    event        INTEGER NOT NULL REFERENCES outbox_events(id),
    url          TEXT    NOT NULL,
    tenant       TEXT    NOT NULL,           -- the webhook's tenant (covers the batch's)
    state        TEXT    NOT NULL,           -- PENDING | FAILING | DELIVERED
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    last_status  INTEGER NOT NULL DEFAULT 0,
    alarm        INTEGER NOT NULL DEFAULT 0,  -- alarms.id raised when it started failing
    delivered_at INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (event, url)
);
CREATE INDEX outbox_due ON outbox(state, next_attempt);
