-- Repeatable code: the plan cache (issue 13). The SQL that erasure, verification and the
-- guards generate from the registry and the catalog (pii_internal.erase_plan, row_erased_sql,
-- subject_key_sql, subject_rows_sql …) is the same on every call until the registry or a
-- registered table changes, and generating it costs far more than running it (a
-- single-subject erasure spent ~100 ms planning, ~1 ms erasing). So it is kept in
-- pii_internal.plan_cache per generation of pii_internal.plan_state:
--  * writes to the registry tables bump the generation (statement triggers), and so does
--    DDL on a registered table, on a table with a foreign key to one, on their schemas and
--    types (event triggers), and every apply of Lethe's code (the templates may change);
--  * the bump is an UPDATE of one row: readers see the new generation when the change
--    commits, and plans built from an older snapshot are stored under the older
--    generation, which nobody reads again;
--  * at the commit of a bumping transaction (a deferred constraint trigger) the plans are
--    built, in that transaction, so that the first erasure after a registration plans
--    nothing even when it rolls back; a build that fails leaves the cache empty (built on
--    use), never fails the commit;
--  * where Lethe may not create event triggers (no superuser at install), DDL would go
--    unseen: the cache is not used at all there (plans are generated on every call, as
--    before).
-- The cache holds Lethe's own format()'d text only, never a caller's SQL, and is
-- readable and writable by Lethe's owner only.

comment on table pii_internal.plan_state is 'One row: the generation of the registry and catalog state cached plans were built from (bumped by registry writes and DDL on registered tables).';
comment on table pii_internal.plan_cache is 'SQL generated from the registry (erasure plan, per-table predicates) by name, valid for one generation of pii_internal.plan_state. Lethe''s own text only; owner-only.';

-- Whether DDL is tracked: without the event triggers a rename or a new foreign key would
-- leave stale plans, so the cache is off.
create or replace function pii_internal.plan_cache_enabled() returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.count(*) operator(pg_catalog.=) 2 from pg_catalog.pg_event_trigger e
  where e.evtname in ('lethe_plan_cache_ddl', 'lethe_plan_cache_drop') and e.evtenabled operator(pg_catalog.<>) 'D'
$$;
comment on function pii_internal.plan_cache_enabled() is 'Internal. Whether the plan cache is in use: only while its DDL event triggers are installed and enabled.';

-- The SQL parts cached as name for the current generation; on a miss, build (an SQL
-- expression of type text[] that Lethe writes, calling one of its generators with
-- arguments formatted with %s/%L) is evaluated and its result stored under the generation
-- read before building: a registry change committed meanwhile bumped the generation, so
-- what was built from the older state is never read again. A newer entry is kept.
-- Read-only transactions (a standby, a read-only verification) do not store; with the
-- cache off (plan_cache_enabled) every call builds.
create or replace function pii_internal.cached_sql(name text, build text) returns text[]
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  gen bigint;
  parts text[];
begin
  if pii_internal.plan_cache_enabled() then
    select s.generation into gen from pii_internal.plan_state s;
    select c.parts into parts from pii_internal.plan_cache c
    where c.name operator(pg_catalog.=) cached_sql.name and c.generation operator(pg_catalog.=) gen;
    if parts is not null then
      return parts;
    end if;
  elsif pg_catalog.current_setting('transaction_read_only') operator(pg_catalog.=) 'off'
        and exists (select from pii_internal.plan_cache) then
    -- DDL meanwhile went unseen: what was cached must not be read when the triggers are back.
    delete from pii_internal.plan_cache;
  end if;
  execute 'select ' operator(pg_catalog.||) build into parts;
  if gen is not null and parts is not null and pg_catalog.current_setting('transaction_read_only') operator(pg_catalog.=) 'off' then
    insert into pii_internal.plan_cache as c (name, generation, parts) values (name, gen, parts)
    on conflict on constraint plan_cache_pkey do update set generation = excluded.generation, parts = excluded.parts
      where c.generation operator(pg_catalog.<) excluded.generation;
  end if;
  return parts;
end
$$;
comment on function pii_internal.cached_sql(text, text) is 'Internal. SQL parts generated from the registry, cached per plan generation: the cached parts of a name, or the result of evaluating Lethe''s build expression (then cached).';

-- Registry and DDL changes: a new generation (the old entries are no longer read and are
-- replaced on the next build).
create or replace function pii_internal.bump_plan_generation() returns void
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  update pii_internal.plan_state set generation = generation operator(pg_catalog.+) 1
$$;
comment on function pii_internal.bump_plan_generation() is 'Internal. Starts a new plan cache generation (registry or DDL change).';

create or replace function pii_internal.registry_changed() returns trigger
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.bump_plan_generation();
  return null;
end
$$;
comment on function pii_internal.registry_changed() is 'Internal. Statement trigger on the registry tables: a new plan cache generation.';

do $$
declare
  t text;
begin
  foreach t in array array['pii.tables', 'pii.columns', 'pii.subject_table', 'pii.identifiers'] loop
    execute pg_catalog.format('drop trigger if exists lethe_plan_cache on %s', t);
    execute pg_catalog.format('create trigger lethe_plan_cache after insert or update or delete or truncate on %s '
                              'for each statement execute function pii_internal.registry_changed()', t);
  end loop;
end
$$;

-- The plans a registry needs, built in the bumping transaction at its commit: the erasure
-- plan in mode erase, the per-table predicates the guards and verification use, and the
-- per-table checks of verification in mode erase. Nothing
-- raised here reaches the commit (the cache is then built on first use).
-- SECURITY DEFINER: it fires at the commit of whoever changed the registry or a registered
-- table (pii_admin, a table owner with no Lethe role); it only reads the registry and the
-- catalog and writes the cache.
create or replace function pii_internal.build_plan_cache() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  gen bigint;
  tbl regclass;
begin
  if not pii_internal.plan_cache_enabled() or not exists (select from pii.subject_table) then
    return null;
  end if;
  select s.generation into gen from pii_internal.plan_state s;
  if exists (select from pii_internal.plan_cache c where c.name = 'erase_plan:erase' and c.generation = gen) then
    return null;
  end if;
  begin
    perform pii_internal.erase_plan('erase'), pii_internal.plan_problem('erase');
    for tbl in select t.relid from pii.tables t where exists (select from pg_catalog.pg_class c where c.oid = t.relid) order by t.relid::oid loop
      perform pii_internal.row_erased_sql(tbl, 'anonymize'), pii_internal.subject_rows_sql(tbl),
              pii_internal.residual_check(tbl, pii_internal.erase_action(tbl));
    end loop;
  exception when others then
    -- A registry that cannot be planned yet (lint says why): erasure reports it when called.
    null;
  end;
  return null;
end
$$;
comment on function pii_internal.build_plan_cache() is 'Internal. Deferred trigger: at the commit of a registry or DDL change, caches the erasure plan and the per-table predicates (failures leave the cache to be built on use).';

drop trigger if exists lethe_plan_cache_build on pii_internal.plan_state;
create constraint trigger lethe_plan_cache_build after update on pii_internal.plan_state
  deferrable initially deferred for each row execute function pii_internal.build_plan_cache();

-- DDL that can change a plan: on a registered table (columns, types, constraints, names),
-- on a table with a foreign key to one (shared rows, the order of the statements), on the
-- schema of one (qualified names), on a type or domain (casts, base types); any drop.
create or replace function pii_internal.plan_cache_ddl() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if tg_tag in ('ALTER TYPE', 'ALTER DOMAIN', 'ALTER SCHEMA')
     or exists (
       select from pg_catalog.pg_event_trigger_ddl_commands() d
       where d.classid = 'pg_catalog.pg_class'::regclass
         and (exists (select from pii.tables t where t.relid::oid = d.objid)
              or exists (select from pg_catalog.pg_constraint c
                         where c.contype = 'f' and c.conrelid = d.objid
                           and c.confrelid in (select t.relid::oid from pii.tables t)))) then
    perform pii_internal.bump_plan_generation();
  end if;
end
$$;
comment on function pii_internal.plan_cache_ddl() is 'Internal. Event trigger (ddl_command_end): DDL on registered tables, tables referencing them, schemas and types starts a new plan cache generation.';

create or replace function pii_internal.plan_cache_drop() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.bump_plan_generation();
end
$$;
comment on function pii_internal.plan_cache_drop() is 'Internal. Event trigger (sql_drop): any dropped object may be in a plan (a column, a foreign key, a table): a new plan cache generation.';

do $$
begin
  drop event trigger if exists lethe_plan_cache_ddl;
  drop event trigger if exists lethe_plan_cache_drop;
  create event trigger lethe_plan_cache_ddl on ddl_command_end
    when tag in ('ALTER TABLE', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER SCHEMA', 'ALTER TYPE', 'ALTER DOMAIN',
                 'ALTER FOREIGN TABLE', 'CREATE FOREIGN TABLE')
    execute function pii_internal.plan_cache_ddl();
  create event trigger lethe_plan_cache_drop on sql_drop execute function pii_internal.plan_cache_drop();
exception when insufficient_privilege then
  raise notice 'Lethe: % may not create event triggers (superuser only): erasure plans are generated on every call (no plan cache).', current_user;
end
$$;

-- Lethe's code may have changed the templates: a new generation on every apply.
select pii_internal.bump_plan_generation();

revoke execute on all functions in schema pii, pii_internal from public;
