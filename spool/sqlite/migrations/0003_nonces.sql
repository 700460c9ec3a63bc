-- yktgw spool, version 3: nonces of signed bank callbacks already seen, so
-- that a replayed callback is refused even after a restart.
CREATE TABLE callback_nonces (
    bank    TEXT    NOT NULL,
    nonce   TEXT    NOT NULL,
    seen_at INTEGER NOT NULL, -- Unix nanoseconds of the callback's timestamp
    PRIMARY KEY (bank, nonce)
) WITHOUT ROWID;
CREATE INDEX callback_nonces_seen ON callback_nonces(seen_at);
