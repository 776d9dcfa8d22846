-- The erasure plan cache (issue 13): the SQL Lethe generates from the registry (erasure
-- statements, per-table predicates) is kept per registry generation instead of being
-- regenerated on every call. Functions, triggers and grants: db/code/48_plan_cache.sql.

-- One row: the generation of the registry and of the catalog state the plans read.
-- Registry writes and DDL on registered tables bump it (transactionally: a reader sees the
-- new generation only once the change is committed).
create table pii_internal.plan_state (
  only_row boolean primary key default true check (only_row),
  generation bigint not null default 1
);
insert into pii_internal.plan_state default values;

-- Generated SQL by name ('erase_plan:erase', 'row_erased:<oid>:anonymize', …), valid for
-- one generation. Lethe's own format()'d text only; owner-only.
create table pii_internal.plan_cache (
  name text primary key,
  generation bigint not null,
  parts text[] not null
);

revoke all on pii_internal.plan_state, pii_internal.plan_cache from public;
