-- yktgw spool, version 12: records_state (batch, state, seq) gives way to
-- partial indexes over the rare states.
--
-- Every payment moves its record PENDING -> SENT -> PAID, 1,000,000 rows a
-- batch, 50,000 a file, and each move took records_state's entry out and put
-- it back elsewhere: about 40% of the updates that pace delivery (SENT) and
-- feedback (PAID or FAILED). Nothing looks records up by those states any
-- more: settling asks the deliveries whether each has its applied return
-- file (a file covers its whole delivery), the result totals come from the
-- files (0011), and a batch's per-state counts read the batch in key order.
-- What is looked up by state is rare, and these indexes hold only that.
DROP INDEX records_state;
CREATE INDEX records_failed  ON records(batch, seq) WHERE state = 'FAILED';
CREATE INDEX records_unknown ON records(batch, seq) WHERE state = 'UNKNOWN';
CREATE INDEX records_staged  ON records(batch, seq) WHERE state = 'STAGED';
