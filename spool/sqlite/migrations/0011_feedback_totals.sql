-- yktgw spool, version 11: what each applied return file settled is kept with
-- it, so that settling a batch sums its files' rows instead of reading all of
-- its records (1,000,000 rows, about 0.25 s at the end of every large batch).
--
-- Records become PAID or FAILED only by applying a return file, which covers
-- its whole delivery in one transaction, and PAID and FAILED are final; so
-- the sums over a batch's APPLIED files equal what a scan of its records
-- says. settle checks them against what the batch's control totals and its
-- few records that are not PAID say (records_state finds those), and falls
-- back to the scan, with an alarm, if they ever disagree.
ALTER TABLE feedback_files ADD COLUMN paid       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feedback_files ADD COLUMN paid_fen   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feedback_files ADD COLUMN failed     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE feedback_files ADD COLUMN failed_fen INTEGER NOT NULL DEFAULT 0;

-- Files applied before this version: their sums from the records they settled.
UPDATE feedback_files SET (paid, paid_fen, failed, failed_fen) = (
    SELECT coalesce(sum(r.state = 'PAID'), 0), coalesce(sum(CASE WHEN r.state = 'PAID' THEN r.paid_fen END), 0),
           coalesce(sum(r.state = 'FAILED'), 0), coalesce(sum(CASE WHEN r.state = 'FAILED' THEN r.amount_fen END), 0)
      FROM deliveries d JOIN records r ON r.batch = d.batch AND r.seq BETWEEN d.first_seq AND d.last_seq
     WHERE d.id = feedback_files.delivery)
 WHERE state = 'APPLIED' AND delivery IS NOT NULL;

CREATE INDEX feedback_files_delivery ON feedback_files(delivery) WHERE state = 'APPLIED';
