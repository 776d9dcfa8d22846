-- Lethe's own erasure statements, while they run (issue 13): one row per statement, by
-- backend, registered table and the trigger depth its statement triggers fire at, inserted
-- before the statement and deleted after it in the same transaction (never committed, so
-- no other session ever sees a row, and unlogged: no WAL). The guard on that table at
-- that depth has nothing to check (the rows the statement leaves are erased) and returns
-- at once; writes by any other statement, including the table owner's triggers (one
-- depth deeper), are guarded as before. Owner-only: nobody but Lethe's own functions can
-- add a row, so no session can switch its guards off by forging one.
create unlogged table pii_internal.own_erasure_statements (
  backend_pid integer not null,
  relid oid not null,
  trigger_depth integer not null,
  primary key (backend_pid, relid, trigger_depth)
);
revoke all on pii_internal.own_erasure_statements from public;
comment on table pii_internal.own_erasure_statements is 'Lethe''s own erasure statements while they run (backend, registered table, trigger depth of their statement triggers): their guards return at once. Rows are never committed; owner-only.';
