-- yktgw spool, version 6: reissue links (money rule 6) and replay requests (maker-checker).
ALTER TABLE batches ADD COLUMN reissue_of TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN reissue_of_batch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN reissue_of_seq INTEGER NOT NULL DEFAULT 0;
-- A FAILED record is reissued at most once (a cancelled reissue frees it again).
CREATE UNIQUE INDEX records_reissue_once ON records(reissue_of_batch, reissue_of_seq)
    WHERE reissue_of_seq > 0 AND state NOT IN ('STAGED', 'CANCELLED');

CREATE TABLE replays (
    id           INTEGER PRIMARY KEY,
    delivery     INTEGER NOT NULL REFERENCES deliveries(id),
    state        TEXT    NOT NULL,  -- PENDING_APPROVAL | APPROVED | DONE | REFUSED
    reason       TEXT    NOT NULL,
    requested_by TEXT    NOT NULL,
    approved_by  TEXT    NOT NULL DEFAULT '',
    outcome      TEXT    NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    decided_at   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX replays_delivery ON replays(delivery, state);
