-- yktgw spool, version 16: a batch's count and fen by block of seqs.
--
-- Finalize reads the whole stage back to check its count and fen against
-- the submission's; planning the deliveries then read it all again, file by
-- file, for each file's count and fen (about 70 ms at 1,000,000 records,
-- between the 201 and the first file sealed). Finalize now reads the stage
-- block by block (seqs first_seq .. first_seq + 999) and keeps each block's
-- totals here; planning adds up blocks when a file is a whole number of
-- them. Both readings come from the records, in the transaction that makes
-- the batch visible: the totals are as good as the rows, which do not change
-- count or amount afterwards. Batches finalized before keep no blocks and
-- are planned from the records as before.
CREATE TABLE batch_blocks (
    batch     INTEGER NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    first_seq INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    fen       INTEGER NOT NULL,
    PRIMARY KEY (batch, first_seq)
) WITHOUT ROWID;
