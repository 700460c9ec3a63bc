-- yktgw spool, version 17: a record's amount never changes.
--
-- Since version 16 a file's count and fen for its trailer come from the
-- totals Finalize kept by block of seqs (batch_blocks), read from the records
-- when the batch became visible. They stay the records' totals only while no
-- amount changes; no path of the spool changes one, and this makes it so
-- whatever writes, as records_dedupe_key_fixed does for the dedupe key.
CREATE TRIGGER records_amount_fixed BEFORE UPDATE OF amount_fen ON records
    WHEN old.amount_fen <> new.amount_fen
BEGIN
    SELECT RAISE(ABORT, 'records.amount_fen is immutable');
END;
