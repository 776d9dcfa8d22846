-- Repeatable code: verification (verify_erasure) and the identifier residual search it uses.

-- Verification (F15): proof that a request's subjects left no trace. After erasure only
-- keyed hashes remain, so subjects are found again by hashing the subject table's keys
-- (or by their pseudonym when the key is PII); their rows in every registered table are
-- then checked against the registry's erased state. Identifiers that only the raw values
-- could reveal (an email in an unregistered text column) are looked for while the chunk
-- still has them, and stored.

-- Identifier values of subjects, captured before erasure: the key when it is PII, and
-- the subject table's registered text columns that identify (mask email, or category
-- contact/identifier/email/phone). Values shorter than 5 characters are ignored.
create or replace function pii_internal.capture_identifiers(subject_keys text[], scopes text[],
                                        out current_keys text[], out current_scopes text[], out hashes bytea[], out identifiers text[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  sec pii.secret;
  rows_sql record;
  key_sql text;
  scope_sql text;
  value_list text;
begin
  select * into subj from pii.subject_table;
  select * into sec from pii.secret;
  key_sql := pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.key_attnum)),
                                       pii_internal.column_type(subj.relid, subj.key_attnum));
  scope_sql := case when subj.scope_attnum is null then 'null::text' else pg_catalog.format('t.%I::text', pii_internal.column_name(subj.relid, subj.scope_attnum)) end;
  select pg_catalog.string_agg(pg_catalog.format('(t.%I::text)', pii_internal.column_name(c.relid, c.attnum)), ', ')
    into value_list
  from pii.columns c
  where c.relid = subj.relid and pii_internal.is_text_type(c.relid, c.attnum)
    and (c.mask = 'email' or c.category in ('contact', 'identifier', 'email', 'phone'));
  if subj.key_is_pii then
    value_list := coalesce(value_list || ', ', '') || '(' || key_sql || ')';
  end if;
  current_keys := '{}'; current_scopes := '{}'; hashes := '{}'; identifiers := '{}';
  if value_list is null then
    return;
  end if;
  rows_sql := pii_internal.subject_rows_sql(subj.relid);
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(x.k), '{}'), coalesce(pg_catalog.array_agg(x.s), '{}'),
              coalesce(pg_catalog.array_agg(x.h), '{}'), coalesce(pg_catalog.array_agg(x.v), '{}')
       from (select %s as k, %s as s, %s as h, v.v
             from %s as t cross join lateral (values %s) as v (v)
             where %s and pg_catalog.length(v.v) >= 5) x$q$,
    case when subj.key_is_pii then pii_internal.pseudonym_sql(key_sql) else key_sql end, scope_sql,
    pii_internal.subject_hash_sql(scope_sql, key_sql), pii_internal.qualified_name(subj.relid), value_list, rows_sql.where_sql)
    into current_keys, current_scopes, hashes, identifiers
    using subject_keys, scopes, sec.inner_key, sec.outer_key;
end
$$;
comment on function pii_internal.capture_identifiers(text[], text[]) is 'Internal. Before a chunk''s erasure: the subjects'' identifying values, with their keys as they will be after it.';

-- The keyed hash of a registered table's primary key (alias t), as stored in
-- pii.request_residuals.row_key_hash: the row is found again among its subject's rows
-- without Lethe keeping the key (on the subject table, the key is the subject's).
-- NULL when the table has no primary key.
create or replace function pii_internal.row_key_hash_sql(tbl regclass) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac_sql('''row'' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) pg_catalog.jsonb_build_object('
                               || pg_catalog.string_agg(pg_catalog.format('%L, t.%I', a.attname, a.attname), ', ' order by a.attnum) || ')::text')
  from pg_catalog.pg_constraint c
  join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
  where c.conrelid = tbl and c.contype = 'p'
  having pg_catalog.count(*) > 0
$$;
comment on function pii_internal.row_key_hash_sql(regclass) is 'Internal. SQL text of the keyed hash of a table''s primary key (alias t), with the install key bound as $3/$4.';

-- After erasure: stores every unregistered text/json column of an anonymized registered
-- row that still contains one of the captured identifiers.
create or replace function pii_internal.record_identifier_residuals(request_id uuid, mode text, current_keys text[], current_scopes text[],
                                                hashes bytea[], identifiers text[])
returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  sec pii.secret;
  t record;
  path record;
  rows_sql record;
  value_list text;
  n bigint;
  total bigint := 0;
begin
  if pg_catalog.cardinality(identifiers) = 0 or mode = 'delete' then
    return 0;
  end if;
  select * into sec from pii.secret;
  for t in select r.* from pii.tables r
           where exists (select from pg_catalog.pg_class c where c.oid = r.relid) and pii_internal.erase_action(r.relid) = 'anonymize'
           order by r.relid::oid loop
    select pg_catalog.string_agg(pg_catalog.format('(%L, t.%I::text)', a.attname, a.attname), ', ')
      into value_list
    from pg_catalog.pg_attribute a join pg_catalog.pg_type ty on ty.oid = a.atttypid
    where a.attrelid = t.relid and a.attnum > 0 and not a.attisdropped
      and (ty.typcategory = 'S' or ty.typname in ('json', 'jsonb'))
      and a.attnum is distinct from t.subject_attnum and a.attnum is distinct from t.scope_attnum
      and a.attnum is distinct from t.parent_fk_attnum
      and not exists (select from pii.columns c where c.relid = t.relid and c.attnum = a.attnum);
    continue when value_list is null;
    path := pii_internal.subject_key_sql(t.relid);
    rows_sql := pii_internal.subject_rows_sql(t.relid);
    execute pg_catalog.format(
      $q$insert into pii.request_residuals (request_id, relid, table_name, column_name, subject_hash, row_key_hash, value_hash, detail)
         select distinct $5, %L::regclass, %L, x.col, l.h, %s, %s, 'identifier of the subject found in an unregistered column'
         from %s as t%s, unnest($6::text[], $7::text[], $8::bytea[], $9::text[]) as l (k, s, h, v),
              lateral (values %s) as x (col, val)
         where %s and l.k = %s and %s and pg_catalog.strpos(x.val, l.v) > 0$q$,
      t.relid::oid, pii_internal.qualified_name(t.relid), coalesce(pii_internal.row_key_hash_sql(t.relid), 'null::bytea'), pii_internal.hmac_sql('x.val'),
      pii_internal.qualified_name(t.relid),
      case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      value_list, rows_sql.where_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
      -- Unscoped: no scope test at all (a NULL-safe one made the planner expect one row and loop).
      case when path.scope_sql is null then 'true' else pg_catalog.format('l.s = (%s)::text', path.scope_sql) end)
      using current_keys, current_scopes, sec.inner_key, sec.outer_key, request_id, current_keys, current_scopes, hashes, identifiers;
    get diagnostics n = row_count;
    total := total + n;
  end loop;
  return total;
end
$$;
comment on function pii_internal.record_identifier_residuals(uuid, text, text[], text[], bytea[], text[]) is 'Internal. After a chunk''s erasure: records unregistered columns still holding a subject''s identifier (keyed hashes of the row''s key and of the value).';

-- Subjects given by keyed hash, found again by hashing every key of the subject table (one
-- scan): their keys, scopes (one per key, NULL when unscoped) and hashes, in one order.
create or replace function pii_internal.subjects_by_hash(hashes bytea[], out subject_keys text[], out scopes text[],
                                                         out found_hashes bytea[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  sec pii.secret;
  key_sql text;
  scope_sql text;
begin
  select * into subj from pii.subject_table;
  select * into sec from pii.secret;
  key_sql := pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.key_attnum)),
                                       pii_internal.column_type(subj.relid, subj.key_attnum));
  scope_sql := case when subj.scope_attnum is null then 'null::text'
                    else pg_catalog.format('t.%I::text', pii_internal.column_name(subj.relid, subj.scope_attnum)) end;
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(x.k), '{}'), coalesce(pg_catalog.array_agg(x.s), '{}'), coalesce(pg_catalog.array_agg(x.h), '{}')
       from (select %s as k, %s as s, %s as h from %s as t) x
       join unnest($5::bytea[]) as r (h) on r.h = x.h$q$,
    key_sql, scope_sql, pii_internal.subject_hash_sql(scope_sql, key_sql), pii_internal.qualified_name(subj.relid))
    into subject_keys, scopes, found_hashes using null::text[], null::text[], sec.inner_key, sec.outer_key, hashes;
end
$$;
comment on function pii_internal.subjects_by_hash(bytea[]) is 'Internal. Keys, scopes and hashes of the subject-table rows whose subject hash is among the given ones (one scan): verification and the legal-hold expiry job find subjects again this way.';

-- pii.verify_erasure in steps: the request's subjects (verify_request_subjects), found again
-- (find_subjects_again), the identifiers recorded in unregistered columns that are still
-- there (identifier_residuals), their rows in the registered tables against the erased
-- state (registered_residuals, per table residual_checks_sql).

-- The done items of a request whose subject still has a tombstone. A subject let back in with
-- pii.allow_return (no tombstone any more) is legitimately present again: its new data is not
-- a trace of this request. Raises 42704 (no such request) or 55000 (items still pending).
create or replace function pii_internal.verify_request_subjects(request_id uuid, out hashes bytea[], out pseudonyms text[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  pending bigint;
begin
  if not exists (select from pii.requests r where r.id = verify_request_subjects.request_id) then
    raise exception 'erasure request % does not exist', request_id using errcode = '42704';
  end if;
  select pg_catalog.count(*) into pending from pii.request_items i where i.request_id = verify_request_subjects.request_id and i.status = 'pending';
  if pending > 0 then
    raise exception 'erasure request % is still in progress (% subject(s) pending): verify it once it is finished', request_id, pending
      using errcode = '55000';
  end if;
  select pg_catalog.array_agg(i.subject_hash), pg_catalog.array_agg(i.pseudonym)
    into hashes, pseudonyms
  from pii.request_items i
  where i.request_id = verify_request_subjects.request_id and i.status = 'done'
    and exists (select from pii.tombstones tb where tb.subject_hash = i.subject_hash);
end
$$;
comment on function pii_internal.verify_request_subjects(uuid) is 'Internal. Step of pii.verify_erasure: the keyed hashes (and pseudonyms) of a finished request''s done subjects that still have a tombstone.';

-- Finds the subjects again by their hashes: every key of the subject table is hashed (the
-- raw key may still be there if something went wrong); when the key is PII, its pseudonym
-- is looked up; subjects with no row in the subject table (deleted, or never there) are
-- looked for in the tables that name subjects directly, one pass over each key column.
create or replace function pii_internal.find_subjects_again(hashes bytea[], pseudonyms text[],
                                                            out keys text[], out scopes text[], out found_hashes bytea[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  sec pii.secret;
  missing bytea[];
  key_sql text;
  scope_sql text;
  t record;
  path record;
begin
  select * into subj from pii.subject_table;
  select * into sec from pii.secret;
  key_sql := pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.key_attnum)),
                                       pii_internal.column_type(subj.relid, subj.key_attnum));
  scope_sql := case when subj.scope_attnum is null then 'null::text' else pg_catalog.format('t.%I::text', pii_internal.column_name(subj.relid, subj.scope_attnum)) end;
  select f.subject_keys, f.scopes, f.found_hashes into keys, scopes, found_hashes from pii_internal.subjects_by_hash(hashes) f;
  if subj.key_is_pii then
    execute pg_catalog.format(
      $q$select $1 || coalesce(pg_catalog.array_agg(%s), '{}'), $2 || coalesce(pg_catalog.array_agg(%s), '{}'), $3 || coalesce(pg_catalog.array_agg(p.h), '{}')
         from %s as t join unnest($4::text[], $5::bytea[]) as p (p, h) on t.%I = p.p$q$,
      key_sql, scope_sql, pii_internal.qualified_name(subj.relid), pii_internal.column_name(subj.relid, subj.key_attnum))
      into keys, scopes, found_hashes using keys, scopes, found_hashes, pseudonyms, hashes;
  end if;

  select pg_catalog.array_agg(x.h) into missing
  from (select unnest(hashes) except select unnest(found_hashes)) as x (h);
  if missing is not null then
    for t in select r.* from pii.tables r
             join pg_catalog.pg_class c on c.oid = r.relid
             where r.subject_attnum is not null and r.relid <> subj.relid order by r.relid::oid loop
      path := pii_internal.subject_key_sql(t.relid);
      execute pg_catalog.format(
        $q$select $1 || coalesce(pg_catalog.array_agg(x.k), '{}'), $2 || coalesce(pg_catalog.array_agg(x.s), '{}'), $5 || coalesce(pg_catalog.array_agg(x.h), '{}')
           from (select d.k, d.s, %s as h
                 from (select distinct %s as k, %s::text as s from %s as t) as d) as x
           join unnest($6::bytea[]) as m (h) on m.h = x.h$q$,
        pii_internal.subject_hash_sql('d.s', 'd.k'), pii_internal.key_text_sql(path.key_sql, path.key_type), coalesce(path.scope_sql, 'null'), pii_internal.qualified_name(t.relid))
        into keys, scopes, found_hashes using keys, scopes, sec.inner_key, sec.outer_key, found_hashes, missing;
    end loop;
  end if;
end
$$;
comment on function pii_internal.find_subjects_again(bytea[], text[]) is 'Internal. Step of pii.verify_erasure: the keys, scopes and hashes of the subjects with these hashes, wherever their key still is (subject table, its pseudonym when the key is PII, tables that name subjects directly).';

-- Identifiers found in unregistered columns during erasure, while that value is still
-- there: the row is found among its subject's rows by the keyed hash of its key.
create or replace function pii_internal.identifier_residuals(request_id uuid, keys text[], scopes text[], found_hashes bytea[])
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  sec pii.secret;
  g record;
  path record;
  rows_sql record;
  row_hash text;
begin
  select * into sec from pii.secret;
  for g in select distinct r.relid, r.column_name from pii.request_residuals r
           where r.request_id = identifier_residuals.request_id and exists (select from pg_catalog.pg_class c where c.oid = r.relid) loop
    row_hash := pii_internal.row_key_hash_sql(g.relid);
    if row_hash is null or pii_internal.column_attnum(g.relid, g.column_name) is null
       or not exists (select from pii.tables r where r.relid = g.relid) then
      return query select distinct r.table_name, r.column_name, pg_catalog.encode(r.subject_hash, 'hex'), r.detail
                   from pii.request_residuals r where r.request_id = identifier_residuals.request_id and r.relid = g.relid and r.column_name = g.column_name;
      continue;
    end if;
    path := pii_internal.subject_key_sql(g.relid);
    rows_sql := pii_internal.subject_rows_sql(g.relid);
    return query execute pg_catalog.format(
      $q$select distinct r.table_name, r.column_name, pg_catalog.encode(r.subject_hash, 'hex'), r.detail
         from %s as t%s, unnest($5::text[], $6::text[], $7::bytea[]) as l (k, s, h), pii.request_residuals as r
         where %s and l.k = %s and %s
           and r.request_id = $8 and r.relid = %L::regclass and r.column_name = %L and r.subject_hash = l.h
           and %s = r.row_key_hash and %s = r.value_hash$q$,
      pii_internal.qualified_name(g.relid), case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      rows_sql.where_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
      case when path.scope_sql is null then 'true' else pg_catalog.format('l.s = (%s)::text', path.scope_sql) end,
      g.relid::oid, g.column_name, row_hash, pii_internal.hmac_sql(pg_catalog.format('t.%I::text', g.column_name)))
      using keys, scopes, sec.inner_key, sec.outer_key, keys, scopes, found_hashes, request_id;
  end loop;
end
$$;
comment on function pii_internal.identifier_residuals(uuid, text[], text[], bytea[]) is 'Internal. Step of pii.verify_erasure: identifiers of the subjects recorded in unregistered columns during erasure and still there.';

-- The checks of a registered table's rows as a VALUES list of (column, bad, detail) over the
-- row t and its subject l (NULL when nothing in the table can be a trace): a row that should
-- have been deleted (or is held, with the hold's end), each column not in its erased state,
-- and a PII key not replaced by its pseudonym.
create or replace function pii_internal.residual_checks_sql(tbl regclass, action text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when action = 'delete' then
    pg_catalog.format(
      $c$(null::text, true, coalesce((select 'held until ' || pg_catalog.max(a.held_until) from pii_internal.active_hold_subjects() a
                                       where a.subject_hash = l.h and (a.tables is null or %s::oid = any (a.tables::oid[]))),
                                      'row not deleted'))$c$,
      tbl::oid)
  else (
    select pg_catalog.string_agg(pg_catalog.format('(%L::text, not coalesce(%s, false), %L)', x.col, x.pred, x.detail), ', ')
    from (
      select pii_internal.column_name(c.relid, c.attnum) as col, pii_internal.column_erased_sql(c.relid, c.attnum, c.erase) as pred,
             'not erased (erase strategy ' || c.erase || ')' as detail
      from pii.columns c where c.relid = tbl and pii_internal.column_name(c.relid, c.attnum) is not null
      union all
      -- Found by its pseudonym (not by its raw key, which hashes to the tombstone): the
      -- shape of a key proves nothing (anon_fan@news.example is someone's address).
      select pii_internal.column_name(t.relid, t.subject_attnum), 'l.k operator(pg_catalog.=) any ($8::text[])',
             'subject key not replaced by its pseudonym'
      from pii.tables t, pii.subject_table subj
      where t.relid = tbl and subj.key_is_pii and t.subject_attnum is not null
    ) x where x.pred is not null) end
$$;
comment on function pii_internal.residual_checks_sql(regclass, text) is 'Internal. Step of pii.verify_erasure: the per-row checks of a registered table (alias t, subject l) as a VALUES list, NULL when none apply.';

-- The subjects' rows in every registered table, against the erased state.
create or replace function pii_internal.registered_residuals(mode text, keys text[], scopes text[], found_hashes bytea[], pseudonyms text[])
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  sec pii.secret;
  t record;
  path record;
  rows_sql record;
  checks text;
begin
  select * into sec from pii.secret;
  for t in select r.* from pii.tables r
           where exists (select from pg_catalog.pg_class c where c.oid = r.relid) order by r.relid::oid loop
    checks := pii_internal.residual_checks_sql(t.relid, case when mode = 'delete' then 'delete' else pii_internal.erase_action(t.relid) end);
    continue when checks is null;
    path := pii_internal.subject_key_sql(t.relid);
    rows_sql := pii_internal.subject_rows_sql(t.relid);
    return query execute pg_catalog.format(
      $q$select distinct %L::text, x.col, pg_catalog.encode(l.h, 'hex'), x.detail
         from %s as t%s, unnest($5::text[], $6::text[], $7::bytea[]) as l (k, s, h),
              lateral (values %s) as x (col, bad, detail)
         where %s and l.k = %s and %s and x.bad$q$,
      pii_internal.qualified_name(t.relid), pii_internal.qualified_name(t.relid),
      case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      checks, rows_sql.where_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
      -- Unscoped: no scope test at all (a NULL-safe one made the planner expect one row and loop).
      case when path.scope_sql is null then 'true' else pg_catalog.format('l.s = (%s)::text', path.scope_sql) end)
      using keys, scopes, sec.inner_key, sec.outer_key, keys, scopes, found_hashes, pseudonyms;
  end loop;
end
$$;
comment on function pii_internal.registered_residuals(text, text[], text[], bytea[], text[]) is 'Internal. Step of pii.verify_erasure: the subjects'' rows in every registered table that are not in the state erasure leaves (mode erase or delete).';

create or replace function pii.verify_erasure(request_id uuid)
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subjects record := pii_internal.verify_request_subjects(request_id);
  found record;
begin
  -- Erasure shreds the subjects' vault entries and data keys (db/code/93_vault.sql).
  return query select * from pii_internal.vault_residuals(coalesce(subjects.hashes, '{}'));
  if subjects.hashes is null or not exists (select from pii.subject_table) then
    return;
  end if;
  found := pii_internal.find_subjects_again(subjects.hashes, subjects.pseudonyms);
  if pg_catalog.cardinality(found.keys) = 0 then
    return;
  end if;
  return query select * from pii_internal.identifier_residuals(request_id, found.keys, found.scopes, found.found_hashes);
  return query select * from pii_internal.registered_residuals((select r.mode from pii.requests r where r.id = verify_erasure.request_id),
                                                               found.keys, found.scopes, found.found_hashes, subjects.pseudonyms);
end
$$;
comment on function pii.verify_erasure(uuid) is
$$Every residual trace of a finished request's erased subjects: a registered column not in its erased state, a row
that should have been deleted, a PII key not replaced by its pseudonym, or an identifier of the subject found in an
unregistered text/json column during erasure and still there. Subjects appear as keyed hashes; subjects let back in
with pii.allow_return are not checked. Empty result = verified. Raises 55000 while subjects are still pending.
Example: select * from pii.verify_erasure('…'::uuid);$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.verify_erasure(uuid) to pii_operator, pii_auditor;
