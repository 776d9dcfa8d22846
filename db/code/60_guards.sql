-- Repeatable code: guard triggers that keep erased subjects out (guard_rows, sync_guards, set_guard).

create or replace function pii_internal.guard_rows() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  subj pii.subject_table;
  sec pii.secret;
  path record;
  rows_sql record;
  action text;
  hit_keys text[];
  hit_scopes text[];
  pk_cols text;
  stmt text;
  mode text;
  n bigint;
  held_minimised text;
  held_keys text[] := '{}';
  held_tables oid[];
  held_scopes text[];
  held_stmts record;
  kept bigint;
begin
  if not exists (select from pii.tombstones) then
    return null;
  end if;
  -- Fired on the registered table, or on one of its partitions written to directly.
  select r.* into reg from pii.tables r
  where r.relid = tg_relid
     or r.relid in (select a.relid from pg_catalog.pg_partition_ancestors(tg_relid) a)
  limit 1;
  if reg.relid is null or reg.guard_mode = 'off' then
    return null;
  end if;
  select * into subj from pii.subject_table;
  select * into sec from pii.secret;
  action := pii_internal.erase_action(reg.relid);
  path := pii_internal.subject_key_sql(reg.relid);

  -- Distinct subjects among the new rows that carry PII, hashed once each. (Lethe's own
  -- erasures pass through here too: the rows they leave carry no PII.) A row of a delete
  -- table that a legal hold keeps passes once minimised.
  held_minimised := case when action = 'delete' and exists (select from pii.legal_holds h where h.released_at is null)
                         then pii_internal.row_erased_sql(reg.relid, 'anonymize') else 'false' end;
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(x.k), '{}'), coalesce(pg_catalog.array_agg(x.s), '{}')
       from (select distinct h.k, h.s
             from (select distinct %s::text as s, (%s)::text as k, %s as minimised
                   from lethe_new_rows as t%s
                   where %s and not (%s)) as h
             join pii.tombstones as tb on tb.subject_hash = %s
             where not h.minimised
                or not exists (select from pii_internal.active_hold_subjects() a
                               where a.subject_hash = tb.subject_hash and (a.tables is null or %s::oid = any (a.tables::oid[])))) as x$q$,
    coalesce(path.scope_sql, 'null'), path.key_sql, held_minimised,
    case when path.from_list = '' then '' else ', ' || path.from_list end,
    case when path.join_sql = '' then 'true' else path.join_sql end,
    pii_internal.row_erased_sql(reg.relid, action),
    pii_internal.subject_hash_sql('h.s', 'h.k'), reg.relid::oid)
    into hit_keys, hit_scopes using null::text[], null::text[], sec.inner_key, sec.outer_key;
  if pg_catalog.cardinality(hit_keys) = 0 then
    return null;
  end if;

  mode := reg.guard_mode;
  if mode = 'reject' then
    raise exception '% erased subject(s) cannot be re-ingested into % (% blocked)', pg_catalog.cardinality(hit_keys), pii_internal.qualified_name(reg.relid), pg_catalog.lower(tg_op)
      using errcode = 'PII01',
            hint = 'Stop sending data for erased subjects, or lift a tombstone with pii.allow_return(...) for a person who legitimately came back.';
  end if;

  rows_sql := pii_internal.subject_rows_sql(reg.relid);
  select pg_catalog.string_agg(pg_catalog.format('t.%I = n.%I', a.attname, a.attname), ' and ')
    into pk_cols
  from pg_catalog.pg_constraint c
  join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
  where c.conrelid = reg.relid and c.contype = 'p';

  if tg_op = 'INSERT' and pk_cols is not null
     and (mode = 'skip' or (subj.key_is_pii and reg.relid = subj.relid)) then
    -- Drop just the new rows. (A PII key cannot be scrubbed in place: its pseudonym is taken.)
    stmt := pg_catalog.format('delete from %s as t using lethe_new_rows as n%s where %s and %s',
                              pii_internal.qualified_name(reg.relid),
                              case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
                              pk_cols, rows_sql.where_sql);
  else
    -- Scrub: apply the table's erasure to the subjects' rows (already-erased rows are unchanged).
    select p.statement into stmt from pii_internal.erase_plan('erase') p where p.relid = reg.relid;
    if action = 'delete' then
      select x.held_keys, x.held_tables, x.held_scopes into held_keys, held_tables, held_scopes
      from pii_internal.held_pairs(hit_keys, hit_scopes) x;
    end if;
  end if;

  if pg_catalog.cardinality(held_keys) > 0 then
    -- Held rows are minimised, not deleted (as the erasure itself does).
    held_stmts := pii_internal.held_step_statements(reg.relid, stmt);
    n := 0;
    if held_stmts.minimise is not null then
      execute held_stmts.minimise using hit_keys, hit_scopes, sec.inner_key, sec.outer_key, held_keys, held_tables, held_scopes;
      get diagnostics n = row_count;
    end if;
    execute held_stmts.delete_others using hit_keys, hit_scopes, sec.inner_key, sec.outer_key, held_keys, held_tables, held_scopes;
    get diagnostics kept = row_count;
    n := n + kept;
  else
    execute stmt using hit_keys, hit_scopes, sec.inner_key, sec.outer_key;
    get diagnostics n = row_count;
  end if;

  perform pii_internal.write_audit('guard_' || mode, null, pg_catalog.jsonb_build_object(
    'table', pii_internal.qualified_name(reg.relid), 'operation', pg_catalog.lower(tg_op),
    'subjects', pg_catalog.cardinality(hit_keys), 'rows', n));
  return null;
end
$$;
comment on function pii_internal.guard_rows() is 'Internal. Statement trigger on registered tables and their partitions: rows carrying PII of tombstoned subjects are scrubbed, skipped or rejected (pii.tables.guard_mode).';

-- (Re)creates the guard triggers of a registered table and of each of its partitions
-- (a statement written against a partition fires only the partition's triggers).
create or replace function pii.sync_guards(tbl regclass) returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  mode text;
  part regclass;
  name_ text;
  n integer := 0;
begin
  select t.guard_mode into mode from pii.tables t where t.relid = tbl;
  -- pg_partition_tree lists a partitioned table and its partitions; nothing for a plain table.
  for part in select tbl union select p.relid from pg_catalog.pg_partition_tree(tbl) p loop
    for name_ in select g.tgname from pg_catalog.pg_trigger g
                 where g.tgrelid = part and g.tgname in ('lethe_guard_insert', 'lethe_guard_update') loop
      execute pg_catalog.format('drop trigger %I on %s', name_, pii_internal.qualified_name(part));
    end loop;
    if coalesce(mode, 'off') <> 'off' then
      foreach name_ in array array['insert', 'update'] loop
        execute pg_catalog.format(
          'create trigger %I after %s on %s referencing new table as lethe_new_rows for each statement execute function pii_internal.guard_rows()',
          'lethe_guard_' || name_, name_, pii_internal.qualified_name(part));
      end loop;
      n := n + 1;
    end if;
  end loop;
  return n;
end
$$;
comment on function pii.sync_guards(regclass) is
$$(Re)creates the re-ingestion guard triggers of a registered table and its partitions; returns how many tables
carry them. Registration and pii.set_guard call it, and so does an event trigger when a partition is created or
attached (where Lethe may create event triggers). Example: select pii.sync_guards('crm.events');$$;

create or replace function pii_internal.sync_guard_triggers() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbl regclass := case when tg_op = 'DELETE' then old.relid else new.relid end;
begin
  if exists (select from pg_catalog.pg_class c where c.oid = tbl) then
    perform pii.sync_guards(tbl);
  end if;
  return null;
end
$$;
comment on function pii_internal.sync_guard_triggers() is 'Internal. Keeps guard triggers in line with pii.tables (registered, guard mode changed, unregistered).';

create or replace trigger tables_sync_guards after insert or delete or update of guard_mode on pii.tables
  for each row execute function pii_internal.sync_guard_triggers();

-- A partition created or attached under a registered table gets its guards.
create or replace function pii_internal.guard_new_partitions() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbl regclass;
begin
  for tbl in
    select distinct r.relid
    from pg_catalog.pg_event_trigger_ddl_commands() d
    join pg_catalog.pg_class c on c.oid = d.objid
    cross join lateral pg_catalog.pg_partition_ancestors(d.objid) a
    join pii.tables r on r.relid = a.relid
    -- a new partition (CREATE TABLE … PARTITION OF), or a partitioned table altered (ATTACH PARTITION)
    where d.classid = 'pg_catalog.pg_class'::regclass and (d.objid <> r.relid::oid or c.relkind = 'p')
  loop
    perform pii.sync_guards(tbl);
  end loop;
exception when others then
  raise warning 'Lethe: could not install guard triggers on a new partition: % (run select pii.sync_guards(...))', sqlerrm;
end
$$;
comment on function pii_internal.guard_new_partitions() is 'Internal. Event trigger: guards partitions created or attached under a registered table.';

do $$
begin
  -- Repeatable: re-created on every apply of this file.
  drop event trigger if exists lethe_guard_partitions;
  create event trigger lethe_guard_partitions on ddl_command_end
    when tag in ('CREATE TABLE', 'ALTER TABLE') execute function pii_internal.guard_new_partitions();
exception when insufficient_privilege then
  raise notice 'Lethe: % may not create event triggers (superuser only): after creating a partition of a registered table, run select pii.sync_guards(''<table>'');', current_user;
end
$$;

create or replace function pii.set_guard(tbl regclass, mode text) returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if mode is null or mode not in ('scrub', 'reject', 'skip', 'off') then
    raise exception 'guard mode must be scrub, reject, skip or off, not "%"', mode using errcode = '22023';
  end if;
  update pii.tables t set guard_mode = mode where t.relid = tbl;
  if not found then
    raise exception 'table % is not registered', pii_internal.qualified_name(tbl) using errcode = '55000';
  end if;
  perform pii_internal.write_audit('set_guard', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'mode', mode));
end
$$;
comment on function pii.set_guard(regclass, text) is
$$Sets what happens when rows carrying PII of an erased subject arrive (INSERT, UPDATE, upsert, COPY):
scrub (default: accept the row, erase its PII; rows of delete tables are removed), reject (raise SQLSTATE PII01),
skip (drop the new rows; updates are scrubbed), off. Example: select pii.set_guard('crm.customers', 'reject');$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.set_guard(regclass, text), pii.sync_guards(regclass) to pii_admin;
