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

-- SQL predicate for guards: row t of a table registered as referenced by its parent
-- (address) belongs to one parent row alone: no other foreign key references it and at
-- most one row of the parent does. A shared row is written for its other owners too (a
-- store updating its address), so the guard never attributes it to an erased subject.
-- 'true' for other tables and shared => erase.
create or replace function pii_internal.guard_owned_sql(tbl regclass) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select coalesce(pg_catalog.string_agg(
             case when f.referencing = t.parent_relid and f.conname = t.link_fk
                  then pg_catalog.format('(select pg_catalog.count(*) from (select from %s as r where %s limit 2) as z) operator(pg_catalog.<) 2',
                                         pii_internal.qualified_name(f.referencing), c.cond)
                  else pg_catalog.format('not exists (select from %s as r where %s)', pii_internal.qualified_name(f.referencing), c.cond) end,
             ' and ' order by f.conname), 'true')
    from pii.tables t
    join pii_internal.shared_row_references() f on f.referenced = t.relid
    cross join lateral (
      select pg_catalog.string_agg(pg_catalog.format('r.%I operator(pg_catalog.=) t.%I', pii_internal.column_name(f.referencing, u.a),
                                                     pii_internal.column_name(tbl, u.b)), ' and ') as cond
      from unnest(f.conkey, f.confkey) as u (a, b)
    ) c
    where t.relid = tbl and t.link_referenced and t.shared = 'keep'
  );
end
$$;
comment on function pii_internal.guard_owned_sql(regclass) is 'Internal. SQL predicate: a written row (alias t) of a referenced table belongs to one parent row alone (guards leave shared rows to their other owners).';

-- The columns of registered table tbl that a guard looks at in the rows written to it: the
-- registered PII columns (their erased state), identifiers, the subject key, scope and
-- foreign key to the registered parent, the key registered children refer to, the primary
-- key where rows may be dropped by it (skip mode, identifiers, a subject table whose key
-- is PII) and the columns other tables' foreign keys reference (shared
-- rows). The other columns of built-in types (a payload, timestamps) leave the trigger as
-- NULL: nothing reads them, and the deputy parses only what is read. Columns of any other
-- type (a domain, which may refuse NULL; an enum, citext) always leave as they are.
create or replace function pii_internal.guard_columns(tbl regclass, mode text) returns name[]
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.array_agg(a.attname order by a.attnum), '{}')
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_type ty on ty.oid = a.atttypid
  where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped
    and (ty.typnamespace operator(pg_catalog.<>) 'pg_catalog'::regnamespace
         or a.attnum in (select c.attnum from pii.columns c where c.relid = tbl and c.erase operator(pg_catalog.<>) 'keep')
         or a.attnum in (select i.attnum from pii.identifiers i where i.relid = tbl)
         or a.attnum in (select x from pii.tables t, unnest(array[t.subject_attnum, t.scope_attnum, t.parent_fk_attnum]) x where t.relid = tbl)
         or a.attnum in (select s.key_attnum from pii.subject_table s where s.relid = tbl)
         or a.attnum in (select s.scope_attnum from pii.subject_table s where s.relid = tbl)
         or a.attnum in (select c.parent_key_attnum from pii.tables c where c.parent_relid = tbl)
         or a.attnum in (select unnest(k.conkey) from pg_catalog.pg_constraint k
                         where k.conrelid = tbl and k.contype = 'p'
                           and (mode operator(pg_catalog.=) 'skip' or exists (select from pii.identifiers i where i.relid = tbl)
                                or exists (select from pii.subject_table s where s.relid = tbl and s.key_is_pii)))
         or a.attnum in (select unnest(k.confkey) from pg_catalog.pg_constraint k where k.confrelid = tbl and k.contype = 'f'))
$$;
comment on function pii_internal.guard_columns(regclass, text) is 'Internal. The columns of a registered table whose values a guard reads in written rows (the rest of built-in types are sent to the deputy as NULL).';

-- SQL (over alias t, a row of table rel in the tree of registered table tbl) of the row a
-- guard in mode sends to the deputy, as text: record_out (output functions only, never a cast) of
-- the row with the columns guard_columns does not list NULL. The deputy reads it back as
-- rel's row type.
create or replace function pii_internal.guard_row_text_sql(tbl regclass, rel regclass, mode text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format('pg_catalog.textin(pg_catalog.record_out(row(%s)))',
           pg_catalog.string_agg(case when g.n is not null then pg_catalog.format('t.%I', a.attname) else 'null' end, ', ' order by a.attnum))
  from pg_catalog.pg_attribute a
  left join unnest(pii_internal.guard_columns(tbl, mode)) as g (n) on g.n operator(pg_catalog.=) a.attname
  where a.attrelid = rel and a.attnum > 0 and not a.attisdropped
$$;
comment on function pii_internal.guard_row_text_sql(regclass, regclass, text) is 'Internal. SQL text of a written row as a guard sends it to the deputy: record_out of the columns it reads, the others NULL.';

-- Whether a guard on registered table tbl reads nothing of the written rows but the subject
-- column (and scope), of built-in types whose equal values have one text form (integers,
-- uuid, text and varchar under the default, C or POSIX collation: no domain, no table
-- owner's cast or collation), so that it may take them from the transition table itself
-- (guard_hits_in_place_sql): a table linked directly to its subject, whose rows are
-- deleted on erasure (every row of a subject is a trace) while no legal hold may keep one
-- minimised, with no registered children, no identifier columns and no rows shared with
-- other tables.
create or replace function pii_internal.guard_reads_in_place(tbl regclass) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce((
    select t.subject_attnum is not null
       and pii_internal.erase_action(tbl) operator(pg_catalog.=) 'delete'
       and not exists (select from pii.legal_holds h where h.released_at is null)
       and not exists (select from pii.tables c where c.parent_relid = tbl)
       and not exists (select from pii.identifiers i where i.relid = tbl)
       and not exists (select from pii.subject_table s where s.relid = tbl)
       and pii_internal.guard_owned_sql(tbl) operator(pg_catalog.=) 'true'
       and not exists (select from pg_catalog.pg_attribute a
                       where a.attrelid = tbl and a.attnum in (t.subject_attnum, t.scope_attnum)
                         and (a.atttypid not in ('pg_catalog.int2'::regtype, 'pg_catalog.int4'::regtype, 'pg_catalog.int8'::regtype,
                                                 'pg_catalog.uuid'::regtype, 'pg_catalog.text'::regtype, 'pg_catalog.varchar'::regtype)
                              or a.attcollation not in (0, 100, 950, 951)))
    from pii.tables t where t.relid = tbl), false)
$$;
comment on function pii_internal.guard_reads_in_place(regclass) is 'Internal. Whether a guard reads only a built-in subject column (and scope) of the written rows of a table, and so may read them in place instead of through the deputy.';

-- Replaced by guard_hits_in_place_sql (one statement from the transition table to the hits).
drop function if exists pii_internal.guard_keys_in_place_sql(regclass);

-- Where guard_reads_in_place: SQL of the tombstoned subjects among the rows of the
-- transition table lethe_new_rows, in one statement (no key array in between): with
-- prefilter, only rows whose tombstone bucket (pii_internal.bucket_sql) some tombstone has
-- go on to the DISTINCT, and only those are hashed (HMAC) and probed. Returns keys,
-- scopes and pii (true: every row of such a table carries PII), as guard_hits does.
create or replace function pii_internal.guard_hits_in_place_sql(tbl regclass, prefilter boolean) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  key_type text;
begin
  select * into reg from pii.tables t where t.relid = tbl;
  key_type := pii_internal.column_type(tbl, reg.subject_attnum);
  return pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(h.k), '{}') as keys, coalesce(pg_catalog.array_agg(h.s), '{}') as scopes,
              coalesce(pg_catalog.array_agg(true), '{}') as pii
       from (select %s as k, %s as s from (select distinct t.%I as k, %s as s from lethe_new_rows as t where %s) as d) as h
       join pii_internal.tombstones as tb on tb.subject_hash = %s$q$,
    pii_internal.key_text_sql('d.k', key_type),
    case when reg.scope_attnum is null then 'null::text' else '(d.s)::text' end,
    pii_internal.column_name(tbl, reg.subject_attnum),
    case when reg.scope_attnum is null then 'null' else pg_catalog.format('t.%I', pii_internal.column_name(tbl, reg.scope_attnum)) end,
    case when prefilter
         then pg_catalog.format('%s in (select b.bucket from pii_internal.tombstones as b where b.bucket is not null)',
                                pii_internal.kind_bucket_sql(reg.kind,
                                  case when reg.scope_attnum is null then 'null::text'
                                       else pg_catalog.format('(t.%I)::text', pii_internal.column_name(tbl, reg.scope_attnum)) end,
                                  pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(tbl, reg.subject_attnum)), key_type)))
         else 'true' end,
    pii_internal.kind_hash_sql(reg.kind, 'h.s', 'h.k'));
end
$$;
comment on function pii_internal.guard_hits_in_place_sql(regclass, boolean) is 'Internal. SQL of the tombstoned subjects among a guard''s transition table in place (tables where pii_internal.guard_reads_in_place), bucket-prefiltered per row when asked.';

-- The deputy's half of a guard: SQL selecting, among rows of source (alias t) written to
-- registered table tbl, the distinct subjects (scope, canonical key text) of rows that
-- carry PII or (link_sql, over t) newly link to their subject: inserted, re-keyed,
-- attached. Where tables are registered beneath tbl, their rows then belong to that
-- subject too, PII or not ('false' when there are none). Each key comes back prefixed
-- with 1 when one of its rows carries PII, 2 when it is a minimised row of a delete table
-- (kept by a legal hold, or not), else 0 (a deputy returns two text arrays).
-- Runs with the table owner's rights; Lethe hashes (guard_hits).
create or replace function pii_internal.guard_candidates_sql(tbl regclass, source text, link_sql text) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  path record := pii_internal.subject_key_sql(tbl);
  action text := pii_internal.erase_action(tbl);
  erased text := pii_internal.row_erased_sql(tbl, action);
  filter text;
  pii_sql text;
  flag_sql text;
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
  -- Rows of a delete table carry PII until deleted, but a legal hold keeps some of them
  -- minimised (pii_internal.erase_step): a minimised row is flagged 2, and passes when a
  -- hold keeps its subject's rows in this table (guard_hits decides, by hash).
  flag_sql := case when action = 'delete' and exists (select from pii.legal_holds h where h.released_at is null)
                   then pg_catalog.format('case when %s then ''2'' else ''1'' end', pii_internal.row_erased_sql(tbl, 'anonymize'))
                   else pg_catalog.format('case when %s then ''1'' else ''0'' end', pii_sql) end;
  return pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(h.k), '{}'), coalesce(pg_catalog.array_agg(h.s), '{}')
       from (select distinct %s::text as s, %s operator(pg_catalog.||) %s as k
             from %s as t%s
             where %s and %s) as h$q$,
    coalesce(path.scope_sql, 'null'), flag_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
    source, case when path.from_list = '' then '' else ', ' || path.from_list end,
    case when path.join_sql = '' then 'true' else path.join_sql end, filter || ' and ' || pii_internal.guard_owned_sql(tbl));
end
$$;
comment on function pii_internal.guard_candidates_sql(regclass, text, text) is 'Internal. SQL (for the table owner''s deputy) selecting the subjects of written rows that carry PII or newly link to their subject, flagged 1 (PII), 2 (minimised row of a delete table) or 0.';

-- Lethe's half: which candidates (guard_candidates_sql) of registered table tbl are
-- tombstoned, each hashed once, and whether one of their rows carries PII (a minimised row
-- does unless a legal hold keeps the subject's rows in tbl). Many candidates (a bulk write)
-- are first narrowed to those whose tombstone bucket (pii_internal.bucket_sql) some
-- tombstone has, so that only those are hashed; not while a tombstone without a bucket is
-- left, nor when the tombstones far outnumber the candidates (hashing them is cheaper than
-- reading every bucket).
create or replace function pii_internal.guard_hits(tbl regclass, candidate_keys text[], candidate_scopes text[],
                                                   out keys text[], out scopes text[], out pii boolean[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  kind_ text := (select t.kind from pii.tables t where t.relid = tbl);
  n integer := pg_catalog.cardinality(candidate_keys);
  prefilter text := 'true';
begin
  if n >= 1000
     and n * 20 >= (select c.reltuples from pg_catalog.pg_class c where c.oid = 'pii_internal.tombstones'::regclass)
     and not exists (select from pii_internal.tombstones t where t.bucket is null) then
    prefilter := pg_catalog.format('%s in (select b.bucket from pii_internal.tombstones as b where b.bucket is not null)',
                                   pii_internal.kind_bucket_sql(kind_, 'c.s', 'pg_catalog.substr(c.k, 2)'));
  end if;
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(h.k), '{}'), coalesce(pg_catalog.array_agg(h.s), '{}'),
              coalesce(pg_catalog.array_agg(h.pii or (h.minimised and not exists (
                select from pii_internal.active_hold_subjects() a
                where a.subject_hash = tb.subject_hash and (a.tables is null or $5::oid operator(pg_catalog.=) any (a.tables::oid[]))))), '{}')
       from (select c.s, pg_catalog.substr(c.k, 2) as k, pg_catalog.bool_or(pg_catalog.left(c.k, 1) operator(pg_catalog.=) '1') as pii,
                    pg_catalog.bool_or(pg_catalog.left(c.k, 1) operator(pg_catalog.=) '2') as minimised
             from unnest($1::text[], $2::text[]) as c (k, s) where %s group by 1, 2) as h
       join pii_internal.tombstones as tb on tb.subject_hash = %s$q$,
    prefilter, pii_internal.kind_hash_sql(kind_, 'h.s', 'h.k'))
    into keys, scopes, pii using candidate_keys, candidate_scopes, null::bytea, null::bytea, tbl;
end
$$;
comment on function pii_internal.guard_hits(regclass, text[], text[]) is 'Internal. The tombstoned subjects among a guard''s candidates, with their carries-PII flags (a minimised row a legal hold keeps carries none).';

-- Erases subjects' rows in the tables registered beneath tbl (children) and/or in tbl
-- itself, children first: the statements erasure runs, bound to these subjects, each
-- with its table owner's rights (pii_internal.erase_step: rows a legal hold keeps are
-- minimised, as the erasure itself does).
create or replace function pii_internal.guard_erase(tbl regclass, keys text[], scopes text[], children boolean, self boolean) returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  held record;
  only_tables regclass[];
begin
  if pg_catalog.cardinality(keys) = 0 then
    return 0;
  end if;
  select coalesce(pg_catalog.array_agg(s), '{}') into only_tables
  from pii_internal.registered_subtree(tbl) s where case when s = tbl then self else children end;
  if pg_catalog.cardinality(only_tables) = 0 then
    -- No registered children: no plan to build.
    return 0;
  end if;
  held := pii_internal.held_pairs(keys, scopes, (select t.kind from pii.tables t where t.relid = tbl));
  return (select coalesce(pg_catalog.sum(n), 0)::bigint
          from unnest((pii_internal.run_erase_plan('erase', keys, scopes, false, held.held_keys, held.held_tables, held.held_scopes, only_tables,
                                                   (select t.kind from pii.tables t where t.relid = tbl))).rows_affected) n);
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
  rows_sql record;
  hits record;
  link_col text;
  link_sql text;
  new_rows text[];
  moved text[];
  row_type text;
  candidates record;
  cand_keys text[];
  cand_scopes text[];
  idents record;
  pii_keys text[];
  pii_scopes text[];
  pk_cols text;
  mode text;
  limit_ bigint;
  in_place boolean := false;
  n bigint := 0;
begin
  perform pii_internal.wait_for_erasures();
  if not exists (select from pii_internal.tombstones) then
    return null;
  end if;
  -- Lethe's own erasure statement on this very table (the marker names the registered
  -- table, see below): nothing to check, and no need to find the registered ancestor.
  if exists (select from pii_internal.own_erasure_statements o
             where o.backend_pid operator(pg_catalog.=) pg_catalog.pg_backend_pid()
               and o.relid operator(pg_catalog.=) tg_relid
               and o.trigger_depth operator(pg_catalog.=) pg_catalog.pg_trigger_depth()) then
    return null;
  end if;
  -- Fired on the registered table, or on one of its partitions or inheritance children.
  select r.* into reg from pii.tables r where r.relid = pii_internal.registered_ancestor(tg_relid);
  if reg.relid is null or reg.guard_mode = 'off' then
    return null;
  end if;
  -- Lethe's own erasure statement on this table (pii_internal.erase_step): what it leaves is
  -- erased. Writes the table owner's triggers make meanwhile fire a depth deeper and are checked.
  if exists (select from pii_internal.own_erasure_statements o
             where o.backend_pid operator(pg_catalog.=) pg_catalog.pg_backend_pid()
               and o.relid operator(pg_catalog.=) reg.relid
               and o.trigger_depth operator(pg_catalog.=) pg_catalog.pg_trigger_depth()) then
    return null;
  end if;
  select * into subj from pii.subject_table s where s.kind = reg.kind;

  link_col := pii_internal.column_name(reg.relid, coalesce(reg.subject_attnum, reg.parent_fk_attnum));
  if not exists (select from pii.tables c where c.parent_relid = reg.relid) then
    link_sql := 'false';
  elsif tg_op = 'INSERT' then
    link_sql := 'true';
  else
    -- Link values no old row had: re-keyed rows. Usually none (Lethe's own erasures move
    -- nothing), and then nothing more is looked at. EXCEPT compares with the column type's
    -- default operator class (built in, or an extension's: no table owner's code); only the
    -- moved values are turned into text (output functions, never a cast).
    execute pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(pg_catalog.textin(pg_catalog.record_out(row(l.v)))), '{}')
         from (select n.%1$I as v from lethe_new_rows as n except select o.%1$I from lethe_old_rows as o) as l$q$, link_col)
      into moved;
    link_sql := case when pg_catalog.cardinality(moved) = 0 then 'false'
                     else pg_catalog.format('pg_catalog.textin(pg_catalog.record_out(row(t.%I))) in (select pg_catalog.unnest($1::text[]))', link_col) end;
  end if;
  row_type := pii_internal.qualified_name(tg_relid);
  if reg.guard_mode <> 'skip' and pii_internal.guard_reads_in_place(reg.relid) then
    -- Every row of a subject is a trace, and nothing but the subject column (and scope) of
    -- a built-in type is read: their text is taken here (pg_catalog's output functions),
    -- each distinct value once, and no row leaves the trigger.
    -- One statement: the rows' buckets probed first (when the statement wrote at least
    -- 1,000 rows and a twentieth of the tombstones, and every tombstone has a bucket), then
    -- the distinct survivors hashed and probed; no key array leaves it but the hits.
    limit_ := greatest(1000, (select c.reltuples from pg_catalog.pg_class c where c.oid = 'pii_internal.tombstones'::regclass) operator(pg_catalog./) 20)::bigint;
    execute pii_internal.guard_hits_in_place_sql(reg.relid,
              (select pg_catalog.count(*) from (select from lethe_new_rows limit limit_) as x) >= limit_
              and not exists (select from pii_internal.tombstones t where t.bucket is null))
      into hits;
    in_place := true;
  else
    -- The new rows leave the trigger as text (record_out: output functions only, never a
    -- cast), the columns no guard statement reads NULL (guard_row_text_sql: a payload is
    -- neither printed nor parsed), each distinct row once, and the table owner's deputy
    -- reads them back as the table's row type and selects the subjects of rows that carry
    -- PII and, where tables are registered beneath this one, of rows that newly link to
    -- their subject (inserted, or moved to another subject or parent). Domain checks, casts
    -- and policies on the table run as its owner, never as Lethe. (Lethe's own erasures
    -- pass through here too: the rows they leave carry no PII, and they move nothing.)
    -- Lethe then hashes each subject once and probes the tombstones, on text only.
    execute pg_catalog.format('select coalesce(pg_catalog.array_agg(r.v), ''{}'') from (select distinct %s as v from lethe_new_rows as t) as r',
                              pii_internal.guard_row_text_sql(reg.relid, tg_relid, reg.guard_mode))
      into new_rows;
    candidates := pii_internal.as_owner(reg.relid,
      pii_internal.guard_candidates_sql(reg.relid, pg_catalog.format('pg_catalog.unnest($5::text[]::%s[])', row_type), link_sql),
      true, moved, null, new_rows);
    cand_keys := candidates.found_keys;
    cand_scopes := candidates.found_scopes;
  end if;
  if not in_place then
    hits := pii_internal.guard_hits(reg.relid, cand_keys, cand_scopes);
  end if;
  -- An erased person written again under a new key, known by an identifier (email, phone):
  -- on the subject table the new key is theirs (tombstoned, then guarded as one); elsewhere
  -- only the rows carrying the identifier are theirs.
  idents := pii_internal.identifier_hits(reg.relid, reg.relid, pg_catalog.format('pg_catalog.unnest($5::text[]::%s[])', row_type), new_rows,
                                         hits.keys, hits.scopes, hits.pii);
  if pg_catalog.cardinality(idents.new_hashes) > 0 then
    perform pii_internal.flag_subjects(idents.new_hashes, reg.kind, idents.new_buckets);
    hits := idents;
  elsif pg_catalog.cardinality(idents.pairs) > 0 then
    n := pii_internal.guard_identifier_rows(reg.relid, row_type, new_rows, idents.pairs, reg.guard_mode, tg_op);
  end if;
  if pg_catalog.cardinality(hits.keys) = 0 then
    if n > 0 then
      perform pii_internal.write_audit('guard_' || reg.guard_mode, null, pg_catalog.jsonb_build_object(
        'table', pii_internal.qualified_name(reg.relid), 'operation', pg_catalog.lower(tg_op), 'subjects', 0, 'identifier_rows', n, 'rows', n));
    end if;
    return null;
  end if;
  select coalesce(pg_catalog.array_agg(u.k), '{}'), coalesce(pg_catalog.array_agg(u.s), '{}') into pii_keys, pii_scopes
  from unnest(hits.keys, hits.scopes, hits.pii) as u (k, s, p) where u.p;

  mode := reg.guard_mode;
  if mode = 'reject' and pg_catalog.cardinality(pii_keys) > 0 then
    raise exception '% erased subject(s) cannot be re-ingested into % (% blocked)', pg_catalog.cardinality(pii_keys), pii_internal.qualified_name(reg.relid), pg_catalog.lower(tg_op)
      using errcode = 'PII01',
            hint = 'Stop sending data for erased subjects, or lift a tombstone with pii.allow_return(...) for a person who legitimately came back.';
  end if;

  -- Rows registered beneath these rows now belong to erased subjects: erase them first
  -- (their statements reach the subject through these rows).
  n := pii_internal.guard_erase(reg.relid, hits.keys, hits.scopes, true, false);

  if pg_catalog.cardinality(pii_keys) > 0 then
    rows_sql := pii_internal.subject_rows_sql(reg.relid);
    select pg_catalog.string_agg(pg_catalog.format('t.%I = n.%I', a.attname, a.attname), ' and ')
      into pk_cols
    from pg_catalog.pg_constraint c
    join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
    where c.conrelid = reg.relid and c.contype = 'p';
    if tg_op = 'INSERT' and pk_cols is not null
       and (mode = 'skip' or (subj.key_is_pii and reg.relid = subj.relid)) then
      -- Drop just the new rows (with the owner's rights). (A PII key cannot be scrubbed in
      -- place: its pseudonym is taken.)
      n := n + (pii_internal.as_owner(reg.relid, pg_catalog.format(
                  'delete from %s as t using pg_catalog.unnest($5::text[]::%s[]) as n%s where %s and %s',
                  pii_internal.qualified_name(reg.relid), row_type,
                  case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
                  pk_cols, rows_sql.where_sql), false, pii_keys, pii_scopes, new_rows)).n;
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
    'subjects', pg_catalog.cardinality(hits.keys), 'rows', n));
  return null;
end
$$;
comment on function pii_internal.guard_rows() is 'Internal. Statement trigger on registered tables, their partitions and inheritance children: rows carrying PII of tombstoned subjects, or an erased person''s registered identifier under a new key, are scrubbed, skipped or rejected (pii.tables.guard_mode), and rows registered beneath rows that newly link to such a subject are erased; statements on the table run with its owner''s rights.';

-- Rows a table brings into a registered table's tree all at once (ATTACH PARTITION,
-- INHERIT, a partition or child created with rows): checked like one INSERT of them all,
-- read with the rights of the owner of the table that brings them.
create or replace function pii_internal.guard_existing_rows(tbl regclass, part regclass) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  candidates record;
  hits record;
  idents record;
  pii_keys text[];
  pii_scopes text[];
  n bigint;
begin
  select * into reg from pii.tables r where r.relid = tbl;
  if reg.relid is null or reg.guard_mode = 'off' or not exists (select from pii_internal.tombstones) then
    return;
  end if;
  candidates := pii_internal.as_owner(part,
    pii_internal.guard_candidates_sql(reg.relid, pii_internal.qualified_name(part),
                                      case when exists (select from pii.tables c where c.parent_relid = reg.relid) then 'true' else 'false' end),
    true, null, null);
  hits := pii_internal.guard_hits(reg.relid, candidates.found_keys, candidates.found_scopes);
  idents := pii_internal.identifier_hits(reg.relid, part, pii_internal.qualified_name(part), null, hits.keys, hits.scopes, hits.pii);
  if pg_catalog.cardinality(idents.new_hashes) > 0 then
    perform pii_internal.flag_subjects(idents.new_hashes, reg.kind, idents.new_buckets);
    hits := idents;
  elsif pg_catalog.cardinality(idents.pairs) > 0 then
    -- The rows are already in the tree: erase those carrying the identifiers (or refuse).
    perform pii_internal.guard_identifier_rows(reg.relid, null, null, idents.pairs, case when reg.guard_mode = 'reject' then 'reject' else 'scrub' end, 'ATTACH');
  end if;
  if pg_catalog.cardinality(hits.keys) = 0 then
    return;
  end if;
  select coalesce(pg_catalog.array_agg(u.k), '{}'), coalesce(pg_catalog.array_agg(u.s), '{}') into pii_keys, pii_scopes
  from unnest(hits.keys, hits.scopes, hits.pii) as u (k, s, p) where u.p;
  if reg.guard_mode = 'reject' and pg_catalog.cardinality(pii_keys) > 0 then
    raise exception '% erased subject(s) cannot be brought into % with %', pg_catalog.cardinality(pii_keys), pii_internal.qualified_name(reg.relid), pii_internal.qualified_name(part)
      using errcode = 'PII01',
            hint = 'Remove the erased subjects'' rows from the table first (or lift their tombstones with pii.allow_return(...)).';
  end if;
  n := pii_internal.guard_erase(reg.relid, hits.keys, hits.scopes, true, false)
       + pii_internal.guard_erase(reg.relid, pii_keys, pii_scopes, false, true);
  perform pii_internal.write_audit('guard_attach', null, pg_catalog.jsonb_build_object(
    'table', pii_internal.qualified_name(reg.relid), 'attached', pii_internal.qualified_name(part),
    'subjects', pg_catalog.cardinality(hits.keys), 'rows', n));
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

-- Guards made by an earlier version (no old transition table, or not ENABLE ALWAYS) are
-- made again when this file is applied (lethe migrate).
do $$
declare
  tbl regclass;
begin
  for tbl in
    select t.relid from pii.tables t
    where t.guard_mode <> 'off' and exists (select from pg_catalog.pg_class c where c.oid = t.relid)
      and exists (select from pii_internal.guarded_tree(t.relid) d (rel)
                  left join pg_catalog.pg_trigger g on g.tgrelid = d.rel and g.tgname = 'lethe_guard_update'
                  where g.oid is null or g.tgoldtable is null or g.tgenabled <> 'A')
  loop
    perform pii.sync_guards(tbl);
  end loop;
end
$$;
