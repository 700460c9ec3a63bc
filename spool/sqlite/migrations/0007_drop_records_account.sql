-- yktgw spool, version 7: records_account served no query that needed it; every insert paid for it.
DROP INDEX IF EXISTS records_account;
