-- yktgw spool, version 1: batches, records, tokens, audit chain.
CREATE TABLE batches (
    id           INTEGER PRIMARY KEY,
    batch_id     TEXT    NOT NULL,
    tenant       TEXT    NOT NULL,
    bank         TEXT    NOT NULL,
    subsidy_code TEXT    NOT NULL,
    subsidy_name TEXT    NOT NULL DEFAULT '',
    period       TEXT    NOT NULL,
    memo         TEXT    NOT NULL DEFAULT '',
    total_count  INTEGER NOT NULL DEFAULT 0,
    total_fen    INTEGER NOT NULL DEFAULT 0,
    content_hash BLOB,
    state        TEXT    NOT NULL,
    warnings     BLOB,
    submitted_by TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
-- The platform's batch id is unique among visible batches; stages may race.
CREATE UNIQUE INDEX batches_batch_id ON batches(batch_id) WHERE state <> 'STAGING';
CREATE INDEX batches_state ON batches(state);
CREATE INDEX batches_tenant ON batches(tenant, id);

CREATE TABLE records (
    batch         INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    name_enc      BLOB    NOT NULL,
    id_enc        BLOB    NOT NULL,
    account_enc   BLOB    NOT NULL,
    id_index      BLOB    NOT NULL,
    account_index BLOB    NOT NULL,
    dedupe_key    BLOB    NOT NULL,
    account_kind  TEXT    NOT NULL DEFAULT '',
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    remark        TEXT    NOT NULL DEFAULT '',
    state         TEXT    NOT NULL,
    reason        TEXT    NOT NULL DEFAULT '',
    bank_code     TEXT    NOT NULL DEFAULT '',
    bank_message  TEXT    NOT NULL DEFAULT '',
    bank_serial   TEXT    NOT NULL DEFAULT '',
    result_at     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (batch, seq)
) WITHOUT ROWID;
-- Money rule 4 backstop: one active record per (person, subsidy, period).
CREATE UNIQUE INDEX records_dedupe_active ON records(dedupe_key)
    WHERE state IN ('PENDING', 'SENT', 'PAID', 'UNKNOWN');
-- Earlier failures of a person (warning at intake; reissue checks).
CREATE INDEX records_dedupe_failed ON records(dedupe_key) WHERE state = 'FAILED';
CREATE INDEX records_account ON records(account_index);
CREATE INDEX records_state ON records(batch, state, seq);

CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL,
    tenants    TEXT    NOT NULL,
    roles      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE audit (
    seq     INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    reason  TEXT    NOT NULL DEFAULT '',
    detail  BLOB,
    prev    BLOB    NOT NULL,
    hash    BLOB    NOT NULL
);
