-- yktgw spool, version 15: a record's sealed fields are packed with its neighbours'.
--
-- record_fields cost one row a record: at 1,000,000 records about 0.7 of the
-- 2.3 s the single writer spends staging a batch, for values written once
-- and never changed in place. A pack holds the fields and remark of a run of
-- consecutive seqs of one batch (first_seq .. last_seq, at most packRecords
-- of them), each still sealed on its own (SM4-GCM bound to its batch and
-- seq: a pack moves no trust from the record to the row). Intake writes
-- packs; record_fields keeps the rows written before and records in the
-- legacy three-ciphertext layout. A seq is in a pack or in record_fields,
-- never both (records' primary key refuses a seq twice in a batch, and a
-- pack holds only seqs it inserts into records in the same transaction).
-- Readers find a record's pack as the one with the greatest first_seq not
-- above its seq.
CREATE TABLE record_packs (
    batch     INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL CHECK (last_seq >= first_seq),
    packed    BLOB    NOT NULL,
    PRIMARY KEY (batch, first_seq)
);
