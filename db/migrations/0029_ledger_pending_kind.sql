-- The erasure ledger's pending rows carry the tombstone's kind (issue 13): the statement
-- trigger that notes erased subjects has it in its transition table, so the append
-- (db/code/85_ledger.sql pii_internal.append_erasure_ledger) no longer looks every
-- subject's tombstone up again. Pending rows live only inside the erasing transaction.
alter table pii_internal.erasure_ledger_pending add column kind text;

-- The append reads this transaction's pending rows itself (one statement, no arrays);
-- the code defines the new signature, the old one goes.
drop function if exists pii_internal.append_erasure_ledger(bytea[], timestamptz[], text, uuid);
