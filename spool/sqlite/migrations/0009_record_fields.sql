-- yktgw spool, version 9: the sealed personal fields move out of records.
--
-- records is updated at every step of a payment (PENDING -> SENT -> PAID or
-- FAILED, 1,000,000 rows a batch); with the three ciphertexts and the remark
-- in the row, each update rewrote ~300 bytes per record and a 50,000-record
-- state change cost 170 ms. The fields are written once at intake and only
-- read after (rendering, results, reports, key rotation), so they live in
-- record_fields; records keeps the narrow, changing part (the same update:
-- ~25 ms).
CREATE TABLE record_fields (
    batch       INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    name_enc    BLOB    NOT NULL,
    id_enc      BLOB    NOT NULL,
    account_enc BLOB    NOT NULL,
    remark      TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (batch, seq)
) WITHOUT ROWID;

INSERT INTO record_fields(batch, seq, name_enc, id_enc, account_enc, remark)
    SELECT batch, seq, name_enc, id_enc, account_enc, remark FROM records ORDER BY batch, seq;

ALTER TABLE records DROP COLUMN name_enc;
ALTER TABLE records DROP COLUMN id_enc;
ALTER TABLE records DROP COLUMN account_enc;
ALTER TABLE records DROP COLUMN remark;
