-- yktgw spool, version 2: deliveries, bank batch number counters, feedback files,
-- remembered bad accounts and alarms.
CREATE TABLE bank_counters (
    bank TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);

CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    batch         INTEGER NOT NULL REFERENCES batches(id),
    bank          TEXT    NOT NULL,
    bank_batch_no TEXT    NOT NULL,
    file_seq      INTEGER NOT NULL,
    first_seq     INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    total_fen     INTEGER NOT NULL,
    file_name     TEXT    NOT NULL DEFAULT '',
    sealed_path   TEXT    NOT NULL DEFAULT '',
    size          INTEGER NOT NULL DEFAULT 0,
    sm3           BLOB,
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_attempt  INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT    NOT NULL DEFAULT '',
    receipt       TEXT    NOT NULL DEFAULT '',
    sent_at       INTEGER NOT NULL DEFAULT 0,
    deadline_at   INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (bank, bank_batch_no)
);
CREATE INDEX deliveries_state ON deliveries(state, next_attempt);
CREATE INDEX deliveries_batch ON deliveries(batch, file_seq);

-- The processed amount the bank reported for a record.
ALTER TABLE records ADD COLUMN paid_fen INTEGER NOT NULL DEFAULT 0;

CREATE TABLE feedback_files (
    id            INTEGER PRIMARY KEY,
    bank          TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    size          INTEGER NOT NULL,
    sm3           BLOB    NOT NULL,
    state         TEXT    NOT NULL,
    delivery      INTEGER,
    bank_batch_no TEXT    NOT NULL DEFAULT '',
    detail        TEXT    NOT NULL DEFAULT '',
    at            INTEGER NOT NULL
);
CREATE INDEX feedback_files_digest ON feedback_files(bank, sm3);

CREATE TABLE bad_accounts (
    account_index BLOB PRIMARY KEY,
    reason        TEXT    NOT NULL,
    bank          TEXT    NOT NULL,
    at            INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE alarms (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    bank        TEXT    NOT NULL DEFAULT '',
    batch_id    TEXT    NOT NULL DEFAULT '',
    delivery    INTEGER NOT NULL DEFAULT 0,
    detail      TEXT    NOT NULL DEFAULT '',
    resolved_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alarms_open ON alarms(resolved_at, id);
