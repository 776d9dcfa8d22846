-- Repeatable code: guard triggers that keep erased subjects out (guard_rows, sync_guards, set_guard).

-- tbl and the tables registered beneath it (register_child_table), any depth.
create or replace function pii_internal.registered_subtree(tbl regclass) returns setof regclass
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive sub (relid) as (
    select tbl
    union
    select c.relid from pii.tables c join sub on c.parent_relid = sub.relid
  )
  select sub.relid from sub
$$;
comment on function pii_internal.registered_subtree(regclass) is 'Internal. A registered table and the tables registered beneath it as children, any depth.';

-- Waits for direct erasures in flight (pii.erase_subjects holds pii_internal.erasure_lock
-- SHARE ROW EXCLUSIVE until it commits), so that a guard always sees the tombstones of
-- an erasure that did not see its rows. Under READ COMMITTED the guard's next query
-- sees them; a REPEATABLE READ or SERIALIZABLE snapshot cannot, so such a writer that
-- had to wait fails with 40001 and retries.
create or replace function pii_internal.wait_for_erasures() returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if pg_catalog.current_setting('transaction_isolation') = 'read committed' then
    lock table pii_internal.erasure_lock in row exclusive mode;
    return;
  end if;
  begin
    lock table pii_internal.erasure_lock in row exclusive mode nowait;
  exception when lock_not_available then
    lock table pii_internal.erasure_lock in row exclusive mode;
    raise exception 'an erasure committed while this transaction was writing to a registered table' using errcode = '40001',
      hint = 'Retry the transaction: its snapshot cannot see the new tombstones.';
  end;
end
$$;
comment on function pii_internal.wait_for_erasures() is 'Internal. Guards wait here for direct erasures in flight (pii_internal.erasure_lock), so no row slips between an erasure and its tombstones.';

-- SQL finding the tombstoned subjects among the rows of source (alias t) written to
-- registered table tbl, hashed once each: keys, scopes, and per subject whether one of
-- its rows carries PII. link_sql (over t) marks rows that newly link to their subject
-- (inserted, re-keyed, attached): where tables are registered beneath tbl, their rows
-- then belong to that subject too, PII or not ('false' when there are none).
create or replace function pii_internal.guard_hits_sql(tbl regclass, source text, link_sql text) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  path record := pii_internal.subject_key_sql(tbl);
  erased text := pii_internal.row_erased_sql(tbl, pii_internal.erase_action(tbl));
  filter text;
  pii_sql text;
begin
  -- The common cases evaluate the erased-state test once per row.
  if link_sql = 'false' then
    filter := pg_catalog.format('not (%s)', erased);
    pii_sql := 'true';
  elsif link_sql = 'true' then
    filter := 'true';
    pii_sql := pg_catalog.format('not (%s)', erased);
  else
    filter := pg_catalog.format('(not (%s) or %s)', erased, link_sql);
    pii_sql := pg_catalog.format('not (%s)', erased);
  end if;
  return pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(h.k), '{}'), coalesce(pg_catalog.array_agg(h.s), '{}'), coalesce(pg_catalog.array_agg(h.pii), '{}')
       from (select x.s, x.k, pg_catalog.bool_or(x.pii) as pii
             from (select %s::text as s, %s as k, %s as pii
                   from %s as t%s
                   where %s and %s) as x
             group by x.s, x.k) as h
       join pii.tombstones as tb on tb.subject_hash = %s$q$,
    coalesce(path.scope_sql, 'null'), pii_internal.key_text_sql(path.key_sql, path.key_type), pii_sql,
    source, case when path.from_list = '' then '' else ', ' || path.from_list end,
    case when path.join_sql = '' then 'true' else path.join_sql end, filter,
    pii_internal.subject_hash_sql('h.s', 'h.k'));
end
$$;
comment on function pii_internal.guard_hits_sql(regclass, text, text) is 'Internal. SQL returning the tombstoned subjects (keys, scopes, carries-PII flags) among rows of a source relation of a registered table.';

-- Erases subjects' rows in the tables registered beneath tbl (children) and/or in tbl
-- itself, children first: the statements erasure runs, bound to these subjects.
create or replace function pii_internal.guard_erase(tbl regclass, keys text[], scopes text[], children boolean, self boolean) returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  sec pii.secret;
  step record;
  n bigint;
  total bigint := 0;
begin
  if pg_catalog.cardinality(keys) = 0 then
    return 0;
  end if;
  select * into sec from pii.secret;
  for step in select p.statement from pii_internal.erase_plan('erase') p
              where case when p.relid = tbl then self
                         else children and p.relid in (select s from pii_internal.registered_subtree(tbl) s) end loop
    execute step.statement using keys, scopes, sec.inner_key, sec.outer_key;
    get diagnostics n = row_count;
    total := total + n;
  end loop;
  return total;
end
$$;
comment on function pii_internal.guard_erase(regclass, text[], text[], boolean, boolean) is 'Internal. Runs erasure for some subjects on a registered table''s registered children and/or the table itself, children first.';

create or replace function pii_internal.guard_rows() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  subj pii.subject_table;
  sec pii.secret;
  rows_sql record;
  link_sql text;
  hit_keys text[];
  hit_scopes text[];
  hit_pii boolean[];
  pii_keys text[];
  pii_scopes text[];
  pk_cols text;
  mode text;
  dropped bigint;
  n bigint := 0;
begin
  perform pii_internal.wait_for_erasures();
  if not exists (select from pii.tombstones) then
    return null;
  end if;
  -- Fired on the registered table, or on one of its partitions or inheritance children.
  select r.* into reg from pii.tables r where r.relid = pii_internal.registered_ancestor(tg_relid);
  if reg.relid is null or reg.guard_mode = 'off' then
    return null;
  end if;
  select * into subj from pii.subject_table;
  select * into sec from pii.secret;

  -- Rows carrying PII, and, where tables are registered beneath this one, rows that
  -- newly link to their subject (inserted, or moved to another subject or parent).
  -- (Lethe's own erasures pass through here too: the rows they leave carry no PII, and
  -- they move nothing.)
  link_sql := case
    when not exists (select from pii.tables c where c.parent_relid = reg.relid) then 'false'
    when tg_op = 'INSERT' then 'true'
    else pg_catalog.format('not exists (select from lethe_old_rows as o where o.%1$I is not distinct from t.%1$I)',
                           pii_internal.column_name(reg.relid, coalesce(reg.subject_attnum, reg.parent_fk_attnum)))
  end;
  execute pii_internal.guard_hits_sql(reg.relid, 'lethe_new_rows', link_sql)
    into hit_keys, hit_scopes, hit_pii using null::text[], null::text[], sec.inner_key, sec.outer_key;
  if pg_catalog.cardinality(hit_keys) = 0 then
    return null;
  end if;
  select coalesce(pg_catalog.array_agg(u.k), '{}'), coalesce(pg_catalog.array_agg(u.s), '{}') into pii_keys, pii_scopes
  from unnest(hit_keys, hit_scopes, hit_pii) as u (k, s, p) where u.p;

  mode := reg.guard_mode;
  if mode = 'reject' and pg_catalog.cardinality(pii_keys) > 0 then
    raise exception '% erased subject(s) cannot be re-ingested into % (% blocked)', pg_catalog.cardinality(pii_keys), pii_internal.qualified_name(reg.relid), pg_catalog.lower(tg_op)
      using errcode = 'PII01',
            hint = 'Stop sending data for erased subjects, or lift a tombstone with pii.allow_return(...) for a person who legitimately came back.';
  end if;

  -- Rows registered beneath these rows now belong to erased subjects: erase them first
  -- (their statements reach the subject through these rows).
  n := pii_internal.guard_erase(reg.relid, hit_keys, hit_scopes, true, false);

  if pg_catalog.cardinality(pii_keys) > 0 then
    rows_sql := pii_internal.subject_rows_sql(reg.relid);
    select pg_catalog.string_agg(pg_catalog.format('t.%I = n.%I', a.attname, a.attname), ' and ')
      into pk_cols
    from pg_catalog.pg_constraint c
    join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
    where c.conrelid = reg.relid and c.contype = 'p';
    if tg_op = 'INSERT' and pk_cols is not null
       and (mode = 'skip' or (subj.key_is_pii and reg.relid = subj.relid)) then
      -- Drop just the new rows. (A PII key cannot be scrubbed in place: its pseudonym is taken.)
      execute pg_catalog.format('delete from %s as t using lethe_new_rows as n%s where %s and %s',
                                pii_internal.qualified_name(reg.relid),
                                case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
                                pk_cols, rows_sql.where_sql)
        using pii_keys, pii_scopes, sec.inner_key, sec.outer_key;
      get diagnostics dropped = row_count;
      n := n + dropped;
    else
      -- Scrub: apply the table's erasure to the subjects' rows (already-erased rows are unchanged).
      n := n + pii_internal.guard_erase(reg.relid, pii_keys, pii_scopes, false, true);
    end if;
  end if;
  if n = 0 and pg_catalog.cardinality(pii_keys) = 0 then
    return null;
  end if;

  perform pii_internal.write_audit('guard_' || mode, null, pg_catalog.jsonb_build_object(
    'table', pii_internal.qualified_name(reg.relid), 'operation', pg_catalog.lower(tg_op),
    'subjects', pg_catalog.cardinality(hit_keys), 'rows', n));
  return null;
end
$$;
comment on function pii_internal.guard_rows() is 'Internal. Statement trigger on registered tables, their partitions and inheritance children: rows carrying PII of tombstoned subjects are scrubbed, skipped or rejected (pii.tables.guard_mode), and rows registered beneath rows that newly link to such a subject are erased.';

-- Rows a table brings into a registered table's tree all at once (ATTACH PARTITION,
-- INHERIT, a partition or child created with rows): checked like one INSERT of them all.
create or replace function pii_internal.guard_existing_rows(tbl regclass, part regclass) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  sec pii.secret;
  hit_keys text[];
  hit_scopes text[];
  hit_pii boolean[];
  pii_keys text[];
  pii_scopes text[];
  n bigint;
begin
  select * into reg from pii.tables r where r.relid = tbl;
  if reg.relid is null or reg.guard_mode = 'off' or not exists (select from pii.tombstones) then
    return;
  end if;
  select * into sec from pii.secret;
  execute pii_internal.guard_hits_sql(reg.relid, pii_internal.qualified_name(part),
                                      case when exists (select from pii.tables c where c.parent_relid = reg.relid) then 'true' else 'false' end)
    into hit_keys, hit_scopes, hit_pii using null::text[], null::text[], sec.inner_key, sec.outer_key;
  if pg_catalog.cardinality(hit_keys) = 0 then
    return;
  end if;
  select coalesce(pg_catalog.array_agg(u.k), '{}'), coalesce(pg_catalog.array_agg(u.s), '{}') into pii_keys, pii_scopes
  from unnest(hit_keys, hit_scopes, hit_pii) as u (k, s, p) where u.p;
  if reg.guard_mode = 'reject' and pg_catalog.cardinality(pii_keys) > 0 then
    raise exception '% erased subject(s) cannot be brought into % with %', pg_catalog.cardinality(pii_keys), pii_internal.qualified_name(reg.relid), pii_internal.qualified_name(part)
      using errcode = 'PII01',
            hint = 'Remove the erased subjects'' rows from the table first (or lift their tombstones with pii.allow_return(...)).';
  end if;
  n := pii_internal.guard_erase(reg.relid, hit_keys, hit_scopes, true, false)
       + pii_internal.guard_erase(reg.relid, pii_keys, pii_scopes, false, true);
  perform pii_internal.write_audit('guard_attach', null, pg_catalog.jsonb_build_object(
    'table', pii_internal.qualified_name(reg.relid), 'attached', pii_internal.qualified_name(part),
    'subjects', pg_catalog.cardinality(hit_keys), 'rows', n));
end
$$;
comment on function pii_internal.guard_existing_rows(regclass, regclass) is 'Internal. Checks the rows a partition or inheritance child brings into a registered table (as one INSERT) before it is guarded.';

-- (Re)creates the guard triggers of a registered table and of each table in its tree
-- (partitions and inheritance children), ENABLE ALWAYS: they fire under
-- session_replication_role = replica too (logical replication apply, sync tools).
create or replace function pii.sync_guards(tbl regclass) returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  mode text;
  part regclass;
  parts regclass[];
  name_ text;
begin
  select t.guard_mode into mode from pii.tables t where t.relid = tbl;
  select pg_catalog.array_agg(g) into parts from pii_internal.guarded_tree(tbl) g;
  foreach part in array parts loop
    for name_ in select g.tgname from pg_catalog.pg_trigger g
                 where g.tgrelid = part and g.tgname in ('lethe_guard_insert', 'lethe_guard_update') loop
      execute pg_catalog.format('drop trigger %I on %s', name_, pii_internal.qualified_name(part));
    end loop;
    if coalesce(mode, 'off') <> 'off' then
      execute pg_catalog.format(
        'create trigger lethe_guard_insert after insert on %s referencing new table as lethe_new_rows for each statement execute function pii_internal.guard_rows()',
        pii_internal.qualified_name(part));
      execute pg_catalog.format(
        'create trigger lethe_guard_update after update on %s referencing old table as lethe_old_rows new table as lethe_new_rows for each statement execute function pii_internal.guard_rows()',
        pii_internal.qualified_name(part));
    end if;
  end loop;
  if coalesce(mode, 'off') = 'off' then
    return 0;
  end if;
  -- Only once every table has both (the event trigger looks at the whole tree on each ALTER TABLE).
  foreach part in array parts loop
    execute pg_catalog.format('alter table %s enable always trigger lethe_guard_insert, enable always trigger lethe_guard_update',
                              pii_internal.qualified_name(part));
  end loop;
  return pg_catalog.cardinality(parts);
end
$$;
comment on function pii.sync_guards(regclass) is
$$(Re)creates the re-ingestion guard triggers (ENABLE ALWAYS: they fire under session_replication_role = replica
too) of a registered table, its partitions and inheritance children; returns how many tables carry them.
Registration and pii.set_guard call it, and so does an event trigger when a partition or child is created or
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

-- After CREATE TABLE and ALTER TABLE: a table that joined a registered table's tree
-- (a partition created or attached, an inheritance child created or INHERIT) has its
-- rows checked like one INSERT, then gets its guards; a table that left one (DETACH
-- PARTITION, NO INHERIT) loses them, so that attaching it again is checked again. A
-- guard disabled or set to fire only under replica (ALTER TABLE … DISABLE TRIGGER,
-- ENABLE REPLICA TRIGGER) is refused: pii.set_guard(…, 'off') is the way to turn one off.
create or replace function pii_internal.guard_new_partitions() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  r record;
begin
  for r in select distinct g.tgrelid::regclass as rel from pg_catalog.pg_trigger g
           where g.tgfoid = 'pii_internal.guard_rows'::regproc and pii_internal.registered_ancestor(g.tgrelid) is null loop
    execute pg_catalog.format('drop trigger if exists lethe_guard_insert on %1$s; drop trigger if exists lethe_guard_update on %1$s',
                              pii_internal.qualified_name(r.rel));
  end loop;

  select g.tgrelid::regclass as rel, g.tgname into r
  from pii.tables t cross join lateral pii_internal.guarded_tree(t.relid) d (rel)
  join pg_catalog.pg_trigger g on g.tgrelid = d.rel and g.tgfoid = 'pii_internal.guard_rows'::regproc
  where t.guard_mode <> 'off' and g.tgenabled in ('D', 'R')
  limit 1;
  if found then
    raise exception 'guard trigger % on % may not be disabled', r.tgname, pii_internal.qualified_name(r.rel)
      using errcode = '42501', hint = 'Lethe''s guards keep erased people out. To stop guarding a table: select pii.set_guard(''<registered table>'', ''off'');';
  end if;

  for r in select distinct t.relid as reg, d.rel
           from pii.tables t cross join lateral pii_internal.guarded_tree(t.relid) d (rel)
           where t.guard_mode <> 'off' and exists (select from pg_catalog.pg_class c where c.oid = t.relid)
             and (select pg_catalog.count(*) from pg_catalog.pg_trigger g
                  where g.tgrelid = d.rel and g.tgfoid = 'pii_internal.guard_rows'::regproc) < 2 loop
    if r.rel <> r.reg then
      perform pii_internal.guard_existing_rows(r.reg, r.rel);
    end if;
    perform pii.sync_guards(r.reg);
  end loop;
end
$$;
comment on function pii_internal.guard_new_partitions() is 'Internal. Event trigger: checks and guards partitions and inheritance children joining a registered table, unguards tables that left one, refuses disabling a guard.';

do $$
begin
  -- Repeatable: re-created on every apply of this file.
  drop event trigger if exists lethe_guard_partitions;
  create event trigger lethe_guard_partitions on ddl_command_end
    when tag in ('CREATE TABLE', 'ALTER TABLE') execute function pii_internal.guard_new_partitions();
exception when insufficient_privilege then
  raise notice 'Lethe: % may not create event triggers (superuser only): partitions and inheritance children attached to a registered table are neither checked nor guarded; after creating one, run select pii.sync_guards(''<table>''); (pii.lint reports missing guards)', current_user;
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
