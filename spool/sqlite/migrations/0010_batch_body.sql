-- yktgw spool, version 10: the pre-rendered body of a batch.
--
-- At intake the gateway renders each planned file's detail lines once, in the
-- bank's layout, and seals them (SM4-GCM with the data key) into the spool
-- directory under body/<body>/. The dispatcher then assembles a file from its
-- header, that sealed body and its trailer, instead of reading and decrypting
-- every record again. The body is only a cache: when it is missing or does
-- not match (layout changed, key retired, replays), the records are read.
ALTER TABLE batches ADD COLUMN body TEXT NOT NULL DEFAULT '';
