-- Repeatable code: verification (verify_erasure) and the identifier residual search it uses.

-- Verification (F15): proof that a request's subjects left no trace. After erasure only
-- keyed hashes remain, so subjects are found again by hashing the subject table's keys
-- (or by their pseudonym when the key is PII); their rows in every registered table are
-- then checked against the registry's erased state. Identifiers that only the raw values
-- could reveal (an email in an unregistered text column) are looked for while the chunk
-- still has them, and stored.
--
-- Every read of an application table runs with its owner's rights (pii_internal.as_owner):
-- a read can run the owner's code too (a CREATE CAST of their type to text, a row level
-- security policy, an operator of their type). The deputy returns raw text (keys, scopes,
-- values, packed as jsonb arrays when there are more than two) and Lethe hashes it in its
-- own context: the install key never goes into a statement on an application table.

-- Identifier values of subjects, captured before erasure: the key when it is PII, and
-- the subject table's registered text columns that identify (mask email, or category
-- contact/identifier/email/phone). Values shorter than 5 characters are ignored.
create or replace function pii_internal.capture_identifiers(subject_keys text[], scopes text[], kind text,
                                        out current_keys text[], out current_scopes text[], out hashes bytea[], out identifiers text[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  rows_sql record;
  key_sql text;
  scope_sql text;
  value_list text;
  raw text[];
begin
  subj := pii_internal.subject_kind(kind);
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
  raw := (pii_internal.as_owner(subj.relid, pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(pg_catalog.jsonb_build_array(%s, %s, v.v)::text), '{}'), null::text[]
       from %s as t cross join lateral (values %s) as v (v)
       where %s and pg_catalog.length(v.v) >= 5$q$,
    key_sql, scope_sql, pii_internal.qualified_name(subj.relid), value_list, rows_sql.where_sql),
    true, subject_keys, scopes)).found_keys;
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(x.k order by x.i), '{}'), coalesce(pg_catalog.array_agg(x.s order by x.i), '{}'),
              coalesce(pg_catalog.array_agg(%s order by x.i), '{}'), coalesce(pg_catalog.array_agg(x.v order by x.i), '{}')
       from (select j.j::jsonb ->> 0 as k, j.j::jsonb ->> 1 as s, j.j::jsonb ->> 2 as v, j.i
             from unnest($1::text[]) with ordinality as j (j, i)) x$q$,
    pii_internal.kind_hash_sql(subj.kind, 'x.s', 'x.k'))
    into current_keys, current_scopes, hashes, identifiers
    using raw;
  if subj.key_is_pii then
    current_keys := pii_internal.pseudonyms(current_keys);
  end if;
end
$$;
comment on function pii_internal.capture_identifiers(text[], text[], text) is 'Internal. Before a chunk''s erasure: the subjects'' identifying values, with their keys as they will be after it.';

-- A registered table's primary key (alias t) as text (a jsonb object): a deputy returns
-- it and Lethe keeps its keyed hash (pii_internal.row_key_hash) in
-- pii_internal.request_residuals.row_key_hash, so the row is found again among its subject's rows
-- without Lethe keeping the key (on the subject table, the key is the subject's).
-- NULL when the table has no primary key.
create or replace function pii_internal.row_key_sql(tbl regclass) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select 'pg_catalog.jsonb_build_object('
         || pg_catalog.string_agg(pg_catalog.format('%L, t.%I', a.attname, a.attname), ', ' order by a.attnum) || ')::text'
  from pg_catalog.pg_constraint c
  join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
  where c.conrelid = tbl and c.contype = 'p'
  having pg_catalog.count(*) > 0
$$;
comment on function pii_internal.row_key_sql(regclass) is 'Internal. SQL text of a table''s primary key (alias t) as jsonb text, NULL without a primary key.';

-- The keyed hash of a row_key_sql value (install key: pii_internal.hmac_sql).
create or replace function pii_internal.row_key_hash_sql(row_key_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac_sql('''row'' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) ' || row_key_sql)
$$;
comment on function pii_internal.row_key_hash_sql(text) is 'Internal. SQL text of the keyed hash of a row key (pii_internal.row_key_sql''s text), under the install key.';

-- After erasure: stores every unregistered text/json column of an anonymized registered
-- row that still contains one of the captured identifiers.
create or replace function pii_internal.record_identifier_residuals(request_id uuid, mode text, current_keys text[], current_scopes text[],
                                                hashes bytea[], identifiers text[])
returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  t record;
  path record;
  rows_sql record;
  value_list text;
  found text[];
  n bigint;
  total bigint := 0;
begin
  if pg_catalog.cardinality(identifiers) = 0 or mode = 'delete' then
    return 0;
  end if;
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
    -- With the owner's rights: which identifier (by position) is in which column of which
    -- row; the value itself comes back only to be hashed.
    found := (pii_internal.as_owner(t.relid, pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(distinct pg_catalog.jsonb_build_array(l.i, x.col, %s, x.val)::text), '{}'), null::text[]
         from %s as t%s, unnest($1::text[], $2::text[], $5::text[]) with ordinality as l (k, s, v, i),
              lateral (values %s) as x (col, val)
         where %s and l.k = %s and %s and pg_catalog.strpos(x.val, l.v) > 0$q$,
      coalesce(pii_internal.row_key_sql(t.relid), 'null::text'), pii_internal.qualified_name(t.relid),
      case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      value_list, rows_sql.where_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
      -- Unscoped: no scope test at all (a NULL-safe one made the planner expect one row and loop).
      case when path.scope_sql is null then 'true' else pg_catalog.format('l.s = (%s)::text', path.scope_sql) end),
      true, current_keys, current_scopes, identifiers)).found_keys;
    execute pg_catalog.format(
      $q$insert into pii_internal.request_residuals (request_id, relid, table_name, column_name, subject_hash, row_key_hash, value_hash, detail)
         select distinct $5, %L::regclass, %L, f.col, h.h, case when f.row_key is not null then %s end, %s,
                'identifier of the subject found in an unregistered column'
         from (select (j.j::jsonb ->> 0)::integer as i, j.j::jsonb ->> 1 as col, j.j::jsonb ->> 2 as row_key, j.j::jsonb ->> 3 as val
               from unnest($1::text[]) as j (j)) f
         join unnest($6::bytea[]) with ordinality as h (h, i) on h.i = f.i$q$,
      t.relid::oid, pii_internal.qualified_name(t.relid), pii_internal.row_key_hash_sql('f.row_key'), pii_internal.hmac_sql('f.val'))
      using found, null::text[], null::bytea, null::bytea, request_id, hashes;
    get diagnostics n = row_count;
    total := total + n;
  end loop;
  return total;
end
$$;
comment on function pii_internal.record_identifier_residuals(uuid, text, text[], text[], bytea[], text[]) is 'Internal. After a chunk''s erasure: records unregistered columns still holding a subject''s identifier (keyed hashes of the row''s key and of the value).';

-- Subjects given by keyed hash, found again by hashing the keys of the subject table (one
-- scan): their keys, scopes (one per key, NULL when unscoped) and hashes, in one order.
-- When every given hash has a tombstone with a bucket (pii_internal.bucket_sql, 24 bits of a
-- cheap keyed hash of the same message), only the keys whose bucket is among those buckets
-- are HMACed: a key that hashes to a given hash has that hash's bucket, so none is missed,
-- and at 50,000 subjects about one key in 330 of the others gets through (the guards
-- prefilter the same way, 60_guards). Otherwise (a hash without tombstone or bucket) every
-- key is HMACed.
create or replace function pii_internal.subjects_by_hash(hashes bytea[], kind text, out subject_keys text[], out scopes text[],
                                                         out found_hashes bytea[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  every record;
  buckets integer[];
begin
  subj := pii_internal.subject_kind(kind);
  select case when pg_catalog.count(tb.bucket) operator(pg_catalog.=) (select pg_catalog.count(distinct h.h) from unnest(hashes) as h (h))
              then coalesce(pg_catalog.array_agg(distinct tb.bucket), '{}') end
    into buckets
  from pii_internal.tombstones tb where tb.subject_hash operator(pg_catalog.=) any (hashes);
  -- Every key, read with the owner's rights, hashed here.
  every := pii_internal.as_owner(subj.relid, pg_catalog.format(
    'select coalesce(pg_catalog.array_agg(%s), ''{}''), %s from %s as t',
    pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.key_attnum)),
                              pii_internal.column_type(subj.relid, subj.key_attnum)),
    -- Unscoped: no array of a NULL scope per key (and none unnested below).
    case when subj.scope_attnum is null then 'null::text[]'
         else pg_catalog.format('coalesce(pg_catalog.array_agg(t.%I::text), ''{}'')', pii_internal.column_name(subj.relid, subj.scope_attnum)) end,
    pii_internal.qualified_name(subj.relid)), true, null, null);
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(x.k), '{}'), coalesce(pg_catalog.array_agg(x.s), '{}'), coalesce(pg_catalog.array_agg(x.h), '{}')
       from (select u.k, u.s, %s as h from %s %s) x
       -- A hashed = ANY: each key is hashed once and probed; a join sorted every key's
       -- hash (on disk from 250,000 keys).
       where x.h = any ($5::bytea[])$q$,
    pii_internal.kind_hash_sql(subj.kind, 'u.s', 'u.k'),
    case when subj.scope_attnum is null then '(select v.k, null::text as s from unnest($1::text[]) as v (k)) as u'
         else 'unnest($1::text[], $2::text[]) as u (k, s)' end,
    case when buckets is not null then
      pg_catalog.format('where %s operator(pg_catalog.=) any ($6::integer[]) offset 0', pii_internal.kind_bucket_sql(subj.kind, 'u.s', 'u.k')) else '' end)
    into subject_keys, scopes, found_hashes using every.found_keys, every.found_scopes, null::bytea, null::bytea, hashes, buckets;
end
$$;
comment on function pii_internal.subjects_by_hash(bytea[], text) is 'Internal. Keys, scopes and hashes of the rows of a kind''s subject table whose subject hash is among the given ones (one scan): verification and the legal-hold expiry job find subjects again this way.';

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
  select pg_catalog.count(*) into pending from pii_internal.request_items i where i.request_id = verify_request_subjects.request_id and i.status = 'pending';
  if pending > 0 then
    raise exception 'erasure request % is still in progress (% subject(s) pending): verify it once it is finished', request_id, pending
      using errcode = '55000';
  end if;
  select pg_catalog.array_agg(i.subject_hash), pg_catalog.array_agg(i.pseudonym)
    into hashes, pseudonyms
  from pii_internal.request_items i
  where i.request_id = verify_request_subjects.request_id and i.status = 'done'
    and exists (select from pii_internal.tombstones tb where tb.subject_hash = i.subject_hash);
end
$$;
comment on function pii_internal.verify_request_subjects(uuid) is 'Internal. Step of pii.verify_erasure: the keyed hashes (and pseudonyms) of a finished request''s done subjects that still have a tombstone.';

-- Finds the subjects again by their hashes: every key of the subject table is hashed (the
-- raw key may still be there if something went wrong); when the key is PII, its pseudonym
-- is looked up; subjects with no row in the subject table (deleted, or never there) are
-- looked for in the tables that name subjects directly, one pass over each key column.
create or replace function pii_internal.find_subjects_again(hashes bytea[], pseudonyms text[], kind text,
                                                            out keys text[], out scopes text[], out found_hashes bytea[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  missing bytea[];
  key_sql text;
  scope_sql text;
  t record;
  path record;
  found record;
begin
  subj := pii_internal.subject_kind(kind);
  key_sql := pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.key_attnum)),
                                       pii_internal.column_type(subj.relid, subj.key_attnum));
  scope_sql := case when subj.scope_attnum is null then 'null::text' else pg_catalog.format('t.%I::text', pii_internal.column_name(subj.relid, subj.scope_attnum)) end;
  select f.subject_keys, f.scopes, f.found_hashes into keys, scopes, found_hashes from pii_internal.subjects_by_hash(hashes, subj.kind) f;
  if subj.key_is_pii then
    found := pii_internal.as_owner(subj.relid, pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(%s), '{}'), coalesce(pg_catalog.array_agg(%s), '{}')
         from %s as t join unnest($1::text[]) as p (p) on t.%I = p.p$q$,
      key_sql, scope_sql, pii_internal.qualified_name(subj.relid), pii_internal.column_name(subj.relid, subj.key_attnum)),
      true, pseudonyms, null);
    select keys || coalesce(pg_catalog.array_agg(f.k), '{}'), scopes || coalesce(pg_catalog.array_agg(f.s), '{}'),
           found_hashes || coalesce(pg_catalog.array_agg(p.h), '{}')
      into keys, scopes, found_hashes
    from unnest(found.found_keys, found.found_scopes) as f (k, s) join unnest(pseudonyms, hashes) as p (p, h) on p.p = f.k;
  end if;

  select pg_catalog.array_agg(x.h) into missing
  from (select unnest(hashes) except select unnest(found_hashes)) as x (h);
  if missing is not null then
    for t in select r.* from pii.tables r
             join pg_catalog.pg_class c on c.oid = r.relid
             where r.subject_attnum is not null and r.relid <> subj.relid and r.kind = subj.kind order by r.relid::oid loop
      path := pii_internal.subject_key_sql(t.relid);
      found := pii_internal.as_owner(t.relid, pg_catalog.format(
        $q$select coalesce(pg_catalog.array_agg(d.k), '{}'), coalesce(pg_catalog.array_agg(d.s), '{}')
           from (select distinct %s as k, %s::text as s from %s as t) as d$q$,
        pii_internal.key_text_sql(path.key_sql, path.key_type), coalesce(path.scope_sql, 'null'), pii_internal.qualified_name(t.relid)),
        true, null, null);
      execute pg_catalog.format(
        $q$select $6 || coalesce(pg_catalog.array_agg(x.k), '{}'), $7 || coalesce(pg_catalog.array_agg(x.s), '{}'), $8 || coalesce(pg_catalog.array_agg(x.h), '{}')
           from (select d.k, d.s, %s as h from unnest($1::text[], $2::text[]) as d (k, s)) as x
           join unnest($5::bytea[]) as m (h) on m.h = x.h$q$,
        pii_internal.kind_hash_sql(subj.kind, 'd.s', 'd.k'))
        into keys, scopes, found_hashes using found.found_keys, found.found_scopes, null::bytea, null::bytea, missing, keys, scopes, found_hashes;
    end loop;
  end if;
end
$$;
comment on function pii_internal.find_subjects_again(bytea[], text[], text) is 'Internal. Step of pii.verify_erasure: the keys, scopes and hashes of the subjects of a kind with these hashes, wherever their key still is (subject table, its pseudonym when the key is PII, tables that name subjects directly).';

-- Identifiers found in unregistered columns during erasure, while that value is still
-- there: the row is found among its subject's rows by the keyed hash of its key.
create or replace function pii_internal.identifier_residuals(request_id uuid, keys text[], scopes text[], found_hashes bytea[])
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  g record;
  path record;
  rows_sql record;
  row_key text;
  found text[];
begin
  for g in select distinct r.relid, r.column_name from pii_internal.request_residuals r
           where r.request_id = identifier_residuals.request_id and exists (select from pg_catalog.pg_class c where c.oid = r.relid) loop
    row_key := pii_internal.row_key_sql(g.relid);
    if row_key is null or pii_internal.column_attnum(g.relid, g.column_name) is null
       or not exists (select from pii.tables r where r.relid = g.relid) then
      return query select distinct r.table_name, r.column_name, pg_catalog.encode(r.subject_hash, 'hex'), r.detail
                   from pii_internal.request_residuals r where r.request_id = identifier_residuals.request_id and r.relid = g.relid and r.column_name = g.column_name;
      continue;
    end if;
    path := pii_internal.subject_key_sql(g.relid);
    rows_sql := pii_internal.subject_rows_sql(g.relid);
    -- The subjects' rows, read with the owner's rights: (subject position, row key, value).
    found := (pii_internal.as_owner(g.relid, pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(pg_catalog.jsonb_build_array(l.i, %s, t.%I::text)::text), '{}'), null::text[]
         from %s as t%s, unnest($1::text[], $2::text[]) with ordinality as l (k, s, i)
         where %s and l.k = %s and %s$q$,
      row_key, g.column_name, pii_internal.qualified_name(g.relid), case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      rows_sql.where_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
      case when path.scope_sql is null then 'true' else pg_catalog.format('l.s = (%s)::text', path.scope_sql) end),
      true, keys, scopes)).found_keys;
    return query execute pg_catalog.format(
      $q$select distinct r.table_name, r.column_name, pg_catalog.encode(r.subject_hash, 'hex'), r.detail
         from (select (j.j::jsonb ->> 0)::integer as i, j.j::jsonb ->> 1 as row_key, j.j::jsonb ->> 2 as val
               from unnest($1::text[]) as j (j)) f
         join unnest($6::bytea[]) with ordinality as h (h, i) on h.i = f.i, pii_internal.request_residuals as r
         where r.request_id = $5 and r.relid = %L::regclass and r.column_name = %L and r.subject_hash = h.h
           and %s = r.row_key_hash and %s = r.value_hash$q$,
      g.relid::oid, g.column_name, pii_internal.row_key_hash_sql('f.row_key'), pii_internal.hmac_sql('f.val'))
      using found, null::text[], null::bytea, null::bytea, request_id, found_hashes;
  end loop;
end
$$;
comment on function pii_internal.identifier_residuals(uuid, text[], text[], bytea[]) is 'Internal. Step of pii.verify_erasure: identifiers of the subjects recorded in unregistered columns during erasure and still there.';

-- The checks of a registered table's rows, run with the owner's rights: a VALUES list of
-- (n, bad) over the row t (n: the check's position), and per check its column, its detail
-- and whether it is the key check, which Lethe finishes (NULL when nothing in the table can
-- be a trace): a row that should have been deleted (detail NULL: Lethe says whether a hold
-- keeps it), each column not in its erased state, and a PII key not replaced by its
-- pseudonym (the row is reported unless its subject's key is a pseudonym of the request).
create or replace function pii_internal.residual_checks_sql(tbl regclass, action text,
                                                            out checks text, out columns text[], out details text[], out key_checks boolean[])
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.string_agg(pg_catalog.format('(%s, %s)', x.n, x.bad), ', ' order by x.n),
         pg_catalog.array_agg(x.col order by x.n), pg_catalog.array_agg(x.detail order by x.n), pg_catalog.array_agg(x.is_key order by x.n)
  from (
    select pg_catalog.row_number() over () as n, y.*
    from (
      select null::text as col, 'true' as bad, null::text as detail, false as is_key
      where action = 'delete'
      union all
      select pii_internal.column_name(c.relid, c.attnum),
             pg_catalog.format('not coalesce(%s, false)', pii_internal.column_erased_sql(c.relid, c.attnum, c.erase)),
             'not erased (erase strategy ' || c.erase || ')', false
      from pii.columns c
      where action <> 'delete' and c.relid = tbl and pii_internal.column_name(c.relid, c.attnum) is not null
        and pii_internal.column_erased_sql(c.relid, c.attnum, c.erase) is not null
      union all
      -- Found by its pseudonym (not by its raw key, which hashes to the tombstone): the
      -- shape of a key proves nothing (anon_fan@news.example is someone's address).
      select pii_internal.column_name(t.relid, t.subject_attnum), 'true', 'subject key not replaced by its pseudonym', true
      from pii.tables t, pii.subject_table subj
      where action <> 'delete' and t.relid = tbl and subj.kind = t.kind and subj.key_is_pii and t.subject_attnum is not null
    ) y
  ) x
$$;
comment on function pii_internal.residual_checks_sql(regclass, text) is 'Internal. Step of pii.verify_erasure: the per-row checks of a registered table (alias t) as a VALUES list of (n, bad), with each check''s column, detail and key flag; NULL when none apply.';

-- The statement the deputy runs to check a registered table's rows for the subjects bound as
-- $1/$2 (per row: the positions of the subject and of the failing check), with residual_checks_sql's
-- columns, details and key flags as text: empty when nothing in the table can be a trace.
create or replace function pii_internal.build_residual_check(tbl regclass, action text) returns text[]
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  checks record := pii_internal.residual_checks_sql(tbl, action);
  path record;
  rows_sql record;
begin
  if checks.checks is null then
    return '{}';
  end if;
  path := pii_internal.subject_key_sql(tbl);
  rows_sql := pii_internal.subject_rows_sql(tbl);
  return array[pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(distinct pg_catalog.jsonb_build_array(l.i, x.n)::text), '{}'), null::text[]
         from %s as t%s, unnest($1::text[], $2::text[]) with ordinality as l (k, s, i),
              lateral (values %s) as x (n, bad)
         where %s and l.k = %s and %s and x.bad and %s$q$,
      pii_internal.qualified_name(tbl),
      case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      checks.checks, rows_sql.where_sql, pii_internal.key_text_sql(path.key_sql, path.key_type),
      -- Unscoped: no scope test at all (a NULL-safe one made the planner expect one row and loop).
      case when path.scope_sql is null then 'true' else pg_catalog.format('l.s = (%s)::text', path.scope_sql) end,
      -- A referenced row others share was kept on purpose (shared => keep): no residual.
      pii_internal.exclusively_owned_sql(tbl)),
    checks.columns::text, checks.details::text, checks.key_checks::text];
end
$$;
comment on function pii_internal.build_residual_check(regclass, text) is 'Internal. Generates what pii_internal.residual_check returns (uncached).';

-- Cached per plan generation (48_plan_cache): every chunk of a request checks every table.
create or replace function pii_internal.residual_check(tbl regclass, action text) returns text[]
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return pii_internal.cached_sql(pg_catalog.format('residual_check:%s:%s', tbl::text, action),
                                 pg_catalog.format('pii_internal.build_residual_check(%s, %L)', tbl::oid, action));
end
$$;
comment on function pii_internal.residual_check(regclass, text) is 'Internal. The deputy''s statement checking a registered table''s rows (mode erase''s action, or delete) for the subjects bound as $1/$2, and its checks'' columns, details and key flags (text arrays); empty when none apply.';

-- The subjects' rows in every registered table of a kind, against the erased state: the deputy
-- says which check (by position) fails for which subject (by position); Lethe names them.
-- Tables in proven (pii_internal.proven_deleted, proven_updated) are left out. (The list was
-- named deleted until UPDATE statements were proven too: a parameter is renamed by a drop.)
drop function if exists pii_internal.registered_residuals(text, text[], text[], bytea[], text[], text, regclass[]);
create function pii_internal.registered_residuals(mode text, keys text[], scopes text[], found_hashes bytea[], pseudonyms text[], kind text,
                                                  proven regclass[])
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  t record;
  action text;
  check_ text[];
  found text[];
begin
  for t in select r.* from pii.tables r
           where r.kind = registered_residuals.kind and exists (select from pg_catalog.pg_class c where c.oid = r.relid) order by r.relid::oid loop
    action := case when mode = 'delete' then 'delete' else pii_internal.erase_action(t.relid) end;
    continue when t.relid = any (proven);
    check_ := pii_internal.residual_check(t.relid, action);
    continue when pg_catalog.cardinality(check_) = 0;
    found := (pii_internal.as_owner(t.relid, check_[1], true, keys, scopes)).found_keys;
    -- Subjects joined by position (a subscript of a text[] or bytea[] walks the array), the
    -- pseudonyms by a join (a hash, not a scan of the array per row).
    return query
      select distinct pii_internal.qualified_name(t.relid), c.col, pg_catalog.encode(l.h, 'hex'),
             case when action = 'delete' then
               -- A row a legal hold keeps (minimised) is reported as held, with the hold's end.
               coalesce((select 'held until ' || pg_catalog.max(a.held_until) from pii_internal.active_hold_subjects() a
                         where a.subject_hash = l.h and (a.tables is null or t.relid::oid = any (a.tables::oid[]))),
                        'row not deleted')
             else c.detail end
      from (select (j.j::jsonb ->> 0)::integer as i, (j.j::jsonb ->> 1)::integer as n from unnest(found) as j (j)) f
      join unnest(keys, found_hashes) with ordinality as l (k, h, i) on l.i = f.i
      join unnest(check_[2]::text[], check_[3]::text[], check_[4]::boolean[]) with ordinality as c (col, detail, is_key, n) on c.n = f.n
      left join (select distinct p.p from unnest(pseudonyms) as p (p)) as ps on ps.p = l.k
      where not (c.is_key and ps.p is not null);
  end loop;
end
$$;
comment on function pii_internal.registered_residuals(text, text[], text[], bytea[], text[], text, regclass[]) is 'Internal. Step of pii.verify_erasure: the subjects'' rows in every registered table of their kind that are not in the state erasure leaves (mode erase or delete), tables whose statements are proven to have left no trace (pii_internal.proven_deleted, proven_updated) left out.';

-- Proof that a chunk's DELETE statements left none of its subjects' rows, without looking
-- for them (issue 13: looking probed every key again through the index entries of the rows
-- just deleted, as long as the DELETE itself). A DELETE removes every row its WHERE matches
-- unless something on the table, its partitions or inheritance children keeps one: a BEFORE
-- DELETE row trigger (it may return NULL), a rule, row level security, a foreign table (its
-- server decides). With none of those, a subject's row can be there after the DELETE only if
-- this transaction wrote one since: inserted or updated a row of the table or of a parent
-- its rows reach their subject through (the owner's triggers on any later statement), or
-- changed what the table is (a trigger, rule, policy, partition or name: catalog writes).
-- The transaction's own statistics counters (pg_stat_get_xact_*, which only grow within a
-- transaction and need track_counts) tell both. Rows another session commits meanwhile are
-- the guards' (the subjects are flagged), as for a check that reads: it sees only those
-- committed before it runs. Subjects whose key is PII are also looked for by pseudonym, which
-- the DELETE does not match: their tables are always checked.

-- A table and its partitions and inheritance children (oids).
create or replace function pii_internal.table_tree(tbl regclass) returns setof oid
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive tree (relid) as (
    select tbl::oid
    union
    select i.inhrelid from pg_catalog.pg_inherits i join tree on i.inhparent operator(pg_catalog.=) tree.relid
  )
  select tree.relid from tree
$$;
comment on function pii_internal.table_tree(regclass) is 'Internal. A table and its partitions and inheritance children (oids).';

-- A registered table and the registered parents its rows reach their subject through (oids).
create or replace function pii_internal.registered_path(tbl regclass) returns setof oid
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive path (relid) as (
    select tbl::oid
    union
    select t.parent_relid::oid from pii.tables t join path on t.relid::oid operator(pg_catalog.=) path.relid where t.parent_relid is not null
  )
  select path.relid from path
$$;
comment on function pii_internal.registered_path(regclass) is 'Internal. A registered table and its registered parents up to the subject (oids).';

-- Whether a statement on these tables may not leave the rows it matches as it makes them: a
-- foreign table or row level security, a rule, or a ROW BEFORE trigger of the statement's
-- event (trigger_event: tgtype bit, DELETE 8, UPDATE 16; disabled ones too: enabling one is
-- a catalog write, but the check is cheaper than the doubt).
create or replace function pii_internal.tree_may_alter_rows(relids oid[], trigger_event integer) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select exists (select from pg_catalog.pg_class c
                 where c.oid operator(pg_catalog.=) any (relids)
                   and (c.relkind operator(pg_catalog.<>) all (array['r', 'p']::"char"[]) or c.relrowsecurity))
      -- tgtype: ROW 1, BEFORE 2.
      or exists (select from pg_catalog.pg_trigger g
                 where g.tgrelid operator(pg_catalog.=) any (relids)
                   and g.tgtype::integer operator(pg_catalog.&) (3 operator(pg_catalog.|) trigger_event) operator(pg_catalog.=) (3 operator(pg_catalog.|) trigger_event))
      or exists (select from pg_catalog.pg_rewrite w where w.ev_class operator(pg_catalog.=) any (relids))
$$;
comment on function pii_internal.tree_may_alter_rows(oid[], integer) is 'Internal. Whether a statement on these tables may leave a row it matches other than it makes it: a foreign table, row level security, a rule or a ROW BEFORE trigger of the event (8 DELETE, 16 UPDATE).';

-- Whether a DELETE of tbl may keep a row its WHERE matches (see above).
create or replace function pii_internal.delete_may_keep_rows(tbl regclass) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.tree_may_alter_rows(array(select x.relid from pii_internal.table_tree(tbl) as x (relid)), 8)
$$;
comment on function pii_internal.delete_may_keep_rows(regclass) is 'Internal. Whether a DELETE of a table may keep a row it matches: a BEFORE DELETE row trigger, a rule, row level security or a foreign table on it or its partitions and inheritance children.';

-- Rows this transaction inserted or updated so far in tbl, its partitions and inheritance
-- children, and the registered parents its rows reach their subject through (with theirs).
create or replace function pii_internal.xact_rows_written(tbl regclass) returns bigint
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with tree (relid) as (
    select distinct x.relid from pii_internal.registered_path(tbl) as p (relid), pii_internal.table_tree(p.relid::regclass) as x (relid)
  )
  select pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(tree.relid) operator(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated(tree.relid))::bigint
  from tree
$$;
comment on function pii_internal.xact_rows_written(regclass) is 'Internal. Rows this transaction inserted or updated in a table, its partitions and children, and its registered parents (statistics counters).';

-- This transaction's writes so far to the catalogs that say what a table is and what a DELETE
-- of it runs (names, partitions, triggers, rules, policies).
create or replace function pii_internal.xact_catalog_writes() returns bigint
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(c) operator(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_updated(c)
                        operator(pg_catalog.+) pg_catalog.pg_stat_get_xact_tuples_deleted(c))::bigint
  from unnest(array['pg_catalog.pg_class', 'pg_catalog.pg_inherits', 'pg_catalog.pg_trigger', 'pg_catalog.pg_rewrite',
                    'pg_catalog.pg_policy']::regclass[]) as c
$$;
comment on function pii_internal.xact_catalog_writes() is 'Internal. Rows this transaction wrote so far to pg_class, pg_inherits, pg_trigger, pg_rewrite and pg_policy (statistics counters).';

-- Before a chunk's erasure: for each DELETE of the plan (mode, kind) that removes every row
-- it matches, the rows written so far to its tables, and the catalog writes so far
-- ({"catalog": n, "tables": {oid: n}}); NULL when the counters are off or the key is PII.
create or replace function pii_internal.delete_proof_state(mode text, kind text) returns jsonb
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if not pg_catalog.current_setting('track_counts')::boolean or (pii_internal.subject_kind(kind)).key_is_pii then
    return null;
  end if;
  return pg_catalog.jsonb_build_object('catalog', pii_internal.xact_catalog_writes(), 'tables', (
    select coalesce(pg_catalog.jsonb_object_agg(p.relid::oid::text, pii_internal.xact_rows_written(p.relid)), '{}'::jsonb)
    from pii_internal.erase_plan(mode) p
    join pii.tables t on t.relid operator(pg_catalog.=) p.relid
    where p.action operator(pg_catalog.=) 'delete' and p.capture is null
      and t.kind operator(pg_catalog.=) (pii_internal.subject_kind(delete_proof_state.kind)).kind
      and not pii_internal.delete_may_keep_rows(p.relid)));
end
$$;
comment on function pii_internal.delete_proof_state(text, text) is 'Internal. Before a chunk''s erasure: the statistics counters that later prove its DELETE statements left no row (pii_internal.proven_deleted).';

-- After the erasure: the tables of the state whose DELETE left no row of the subjects: no row
-- written to them and no catalog write since the state was taken.
create or replace function pii_internal.proven_deleted(state jsonb) returns regclass[]
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.array_agg(e.key::oid::regclass), '{}')
  from pg_catalog.jsonb_each_text(state operator(pg_catalog.->) 'tables') e
  where pg_catalog.current_setting('track_counts')::boolean
    and (state operator(pg_catalog.->>) 'catalog')::bigint operator(pg_catalog.=) pii_internal.xact_catalog_writes()
    and e.value::bigint operator(pg_catalog.=) pii_internal.xact_rows_written(e.key::oid::regclass)
$$;
comment on function pii_internal.proven_deleted(jsonb) is 'Internal. After a chunk''s erasure: the tables of pii_internal.delete_proof_state whose DELETE provably left none of the subjects'' rows (nothing written to them or to the catalogs since).';

-- Proof that a chunk's UPDATE statements (anonymise: null, set, pseudonym, jsonb_remove)
-- left none of its subjects' rows unerased, without reading them again. A table's UPDATE
-- sets every registered column erasure changes (erase_set_list) on exactly the subjects'
-- rows (subject_rows_sql, the residual check's WHERE) that are not already erased
-- (row_erased_sql: the conjunction of the columns' erased predicates, each of which is true
-- or false, never NULL, for every strategy of 47_strategies; the residual check fails a row
-- when one of the same predicates is not true). Every strategy's erased value satisfies its
-- erased predicate when it is written as it is computed. So the rows it matched are erased
-- afterwards and the rows it did not match already were, unless something changes or hides
-- a row:
--   * a BEFORE UPDATE row trigger (it may change NEW or return NULL), a rule, row level
--     security (rows the UPDATE does not see), a foreign table (its server decides), on the
--     table, its partitions or inheritance children, or on a registered parent its rows
--     reach their subject through (the chunk updates the parents too);
--   * an erased column whose written value is not the computed one: a generated column
--     (recomputed; PostgreSQL refuses to SET one, so the erasure fails first). Type
--     modifiers and domains are no such case: the erased value is cast to the column's type
--     (typmod and domain included) and the erased predicate compares in its base type with
--     the same modifier (pii_internal.column_base_type), so both sides see the same value;
--   * a column the rows reach their subject through (subject key, scope, foreign key to the
--     parent, the parent's key) that the chunk writes or that is generated: after the
--     parent's own UPDATE other rows could belong to the subject;
--   * any other write by this transaction: a row inserted in the table or a parent (a moved
--     partition row is a delete and an insert), a row updated there beyond the chunk's own
--     statements (an AFTER trigger writing the old value back, a cascade, a later step's
--     trigger), a catalog write (a new trigger, rule, policy; TRUNCATE writes pg_class).
-- The statistics counters tell the writes: per table, rows inserted must not grow and rows
-- updated must grow by exactly the rows the chunk's statement updated there. What cannot be
-- proven is checked by reading, as before. Rows another session commits meanwhile are the
-- guards' (see the DELETE proof above).

-- Whether an UPDATE of tbl may leave a row it matches other than its SET makes it, or change
-- which rows are its subjects' (see above).
create or replace function pii_internal.update_may_change_rows(tbl regclass) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with path (relid) as (select p.relid from pii_internal.registered_path(tbl) as p (relid)),
  tree (relid) as (select distinct x.relid from path, pii_internal.table_tree(path.relid::regclass) as x (relid)),
  -- The columns the path joins on, on each registered table of it.
  links (relid, attnum) as (
    select t.relid::oid, a.attnum
    from pii.tables t join path on t.relid::oid operator(pg_catalog.=) path.relid,
         unnest(array[t.subject_attnum, t.scope_attnum, t.parent_fk_attnum]) as a (attnum)
    where a.attnum is not null
    union
    select t.parent_relid::oid, t.parent_key_attnum
    from pii.tables t join path on t.relid::oid operator(pg_catalog.=) path.relid where t.parent_relid is not null
  ),
  -- tbl's columns erasure writes.
  erased (relid, attnum) as (
    select c.relid::oid, c.attnum from pii.columns c where c.relid operator(pg_catalog.=) tbl and c.erase operator(pg_catalog.<>) 'keep'
  )
  select pii_internal.tree_may_alter_rows(array(select tree.relid from tree), 16)
      or exists (select from links l join pii.columns c on c.relid::oid operator(pg_catalog.=) l.relid and c.attnum operator(pg_catalog.=) l.attnum
                 where c.erase operator(pg_catalog.<>) 'keep')
      -- Recomputed on every UPDATE (PostgreSQL refuses a child's generated column under a
      -- parent's plain one).
      or exists (select from (select * from links union select * from erased) m
                 join pg_catalog.pg_attribute a on a.attrelid operator(pg_catalog.=) m.relid and a.attnum operator(pg_catalog.=) m.attnum
                 where a.attgenerated operator(pg_catalog.<>) '')
$$;
comment on function pii_internal.update_may_change_rows(regclass) is 'Internal. Whether an UPDATE of a registered table may leave a row it matches not as its SET makes it, or change which rows are its subjects'': a BEFORE UPDATE row trigger, a rule, row level security or a foreign table in it or its registered parents (with partitions and children), an erased or path column that is generated, a path column erasure writes.';

-- Rows this transaction inserted and updated so far in a table, its partitions and children.
create or replace function pii_internal.xact_tree_writes(tbl regclass, out inserted bigint, out updated bigint)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_inserted(x.relid)), 0)::bigint,
         coalesce(pg_catalog.sum(pg_catalog.pg_stat_get_xact_tuples_updated(x.relid)), 0)::bigint
  from pii_internal.table_tree(tbl) as x (relid)
$$;
comment on function pii_internal.xact_tree_writes(regclass) is 'Internal. Rows this transaction inserted and updated so far in a table, its partitions and children (statistics counters).';

-- Before a chunk's erasure (mode erase): the UPDATE statements of the plan (kind) that may be
-- proven, and the rows inserted and updated so far in them and their registered parents, with
-- the catalog writes so far ({"catalog": n, "updated": [oid …], "tables": {oid: [ins, upd]}});
-- NULL when none can be, the counters are off or the key is PII.
create or replace function pii_internal.update_proof_state(mode text, kind text) returns jsonb
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  candidates oid[];
begin
  if mode operator(pg_catalog.<>) 'erase' or not pg_catalog.current_setting('track_counts')::boolean
     or (pii_internal.subject_kind(kind)).key_is_pii then
    return null;
  end if;
  select pg_catalog.array_agg(p.relid::oid) into candidates
  from pii_internal.erase_plan(mode) p
  join pii.tables t on t.relid operator(pg_catalog.=) p.relid
  where p.action operator(pg_catalog.=) 'anonymize' and p.capture is null
    and t.kind operator(pg_catalog.=) (pii_internal.subject_kind(update_proof_state.kind)).kind
    and not pii_internal.update_may_change_rows(p.relid);
  if candidates is null then
    return null;
  end if;
  return pg_catalog.jsonb_build_object('catalog', pii_internal.xact_catalog_writes(), 'updated', candidates, 'tables', (
    select pg_catalog.jsonb_object_agg(x.relid::text, pg_catalog.jsonb_build_array(w.inserted, w.updated))
    from (select distinct r.relid from unnest(candidates) as c (relid), pii_internal.registered_path(c.relid::regclass) as r (relid)) x,
         pii_internal.xact_tree_writes(x.relid::regclass) w));
end
$$;
comment on function pii_internal.update_proof_state(text, text) is 'Internal. Before a chunk''s erasure: the statistics counters that later prove its UPDATE statements left no row unerased (pii_internal.proven_updated).';

-- After the erasure (its statements' tables and row counts, as erase_resolved returns them):
-- the tables of the state whose UPDATE left no row of the subjects unerased: no catalog
-- write, and in the table and each registered parent no row inserted and exactly the rows
-- the chunk's own statement updated there, since the state was taken.
create or replace function pii_internal.proven_updated(state jsonb, table_names text[], rows_affected bigint[]) returns regclass[]
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.array_agg(u.relid::oid::regclass), '{}')
  from pg_catalog.jsonb_array_elements_text(state operator(pg_catalog.->) 'updated') as u (relid)
  where pg_catalog.current_setting('track_counts')::boolean
    and (state operator(pg_catalog.->>) 'catalog')::bigint operator(pg_catalog.=) pii_internal.xact_catalog_writes()
    and not exists (
      select from pii_internal.registered_path(u.relid::oid::regclass) as r (relid),
                  pii_internal.xact_tree_writes(r.relid::regclass) w,
                  lateral (select state operator(pg_catalog.->) 'tables' operator(pg_catalog.->) r.relid::text as j) b
      where b.j is null
         or w.inserted operator(pg_catalog.<>) (b.j operator(pg_catalog.->>) 0)::bigint
         or w.updated operator(pg_catalog.<>) ((b.j operator(pg_catalog.->>) 1)::bigint operator(pg_catalog.+) coalesce((
              select pg_catalog.sum(s.n) from unnest(table_names, rows_affected) as s (name, n)
              where s.name operator(pg_catalog.=) pii_internal.qualified_name(r.relid::regclass)), 0)))
$$;
comment on function pii_internal.proven_updated(jsonb, text[], bigint[]) is 'Internal. After a chunk''s erasure: the tables of pii_internal.update_proof_state whose UPDATE provably left none of the subjects'' rows unerased (only the chunk''s own statements wrote to them and their registered parents, no catalog write).';

-- The residual traces of subjects of a kind, given by keyed hash (and pseudonym, for PII
-- keys), after an erasure in a mode; request_id names the request whose residual
-- identifiers were recorded (NULL: none). What verify_erasure and verify_erasure_keys report
-- besides vault residuals.
create or replace function pii_internal.subject_residuals(hashes bytea[], pseudonyms text[], mode text, kind text, request_id uuid)
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  found record := pii_internal.find_subjects_again(hashes, pseudonyms, kind);
begin
  if pg_catalog.cardinality(found.keys) = 0 then
    return;
  end if;
  if request_id is not null then
    return query select * from pii_internal.identifier_residuals(request_id, found.keys, found.scopes, found.found_hashes);
  end if;
  return query select * from pii_internal.registered_residuals(mode, found.keys, found.scopes, found.found_hashes, pseudonyms, kind, '{}');
end
$$;
comment on function pii_internal.subject_residuals(bytea[], text[], text, text, uuid) is 'Internal. Steps of pii.verify_erasure and pii.verify_erasure_keys after the subjects are known: found again, recorded identifiers still there, rows not in their erased state.';

-- Verification of one chunk of a request, in the chunk's transaction right after its
-- erasure (issue 13: verified as erased, not in a pass over every subject at the end). The
-- chunk's subjects are known by key, so they are not found again by hash (a scan of the
-- whole subject table); with a PII key, by their pseudonyms too, as find_subjects_again
-- does. The same checks as pii.verify_erasure: vault entries, recorded identifiers still
-- there, rows not in their erased state (but for the tables whose DELETE or UPDATE is proven
-- to have left none, pii_internal.proven_deleted and proven_updated). Returns how many traces remain, rows a legal hold
-- keeps left out.
drop function if exists pii_internal.chunk_residuals(uuid, text, text, text[], text[], bytea[], text[], regclass[]);
create function pii_internal.chunk_residuals(request_id uuid, mode text, kind text, keys text[], scopes text[],
                                             hashes bytea[], pseudonyms text[], proven regclass[]) returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table := pii_internal.subject_kind(kind);
  k text[] := keys;
  s text[] := scopes;
  h bytea[] := hashes;
begin
  if subj.key_is_pii then
    k := keys || pseudonyms;
    s := scopes || scopes;
    h := hashes || hashes;
  end if;
  return (select pg_catalog.count(*) from (
            select v.detail from pii_internal.vault_residuals(hashes) v
            union all
            select i.detail from pii_internal.identifier_residuals(request_id, k, s, h) i
            union all
            select r.detail from pii_internal.registered_residuals(mode, k, s, h, pseudonyms, subj.kind, proven) r) x
          where x.detail not like 'held until %');
end
$$;
comment on function pii_internal.chunk_residuals(uuid, text, text, text[], text[], bytea[], text[], regclass[]) is 'Internal. The residual traces (pii.verify_erasure''s checks) of one chunk''s subjects, known by key, right after the chunk erased them, tables whose DELETE or UPDATE is proven to have left no trace (proven) left out; rows a legal hold keeps left out.';

create or replace function pii.verify_erasure(request_id uuid)
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subjects record := pii_internal.verify_request_subjects(request_id);
  req pii.requests;
begin
  select * into req from pii.requests r where r.id = verify_erasure.request_id;
  -- Erasure shreds the subjects' vault entries and data keys (db/code/93_vault.sql).
  return query select * from pii_internal.vault_residuals(coalesce(subjects.hashes, '{}'));
  if subjects.hashes is null or not exists (select from pii.subject_table) then
    return;
  end if;
  return query select * from pii_internal.subject_residuals(subjects.hashes, subjects.pseudonyms, req.mode,
    coalesce(req.kind, (select s.kind from pii.subject_table s where s.hash_prefix = '')), req.id);
end
$$;
comment on function pii.verify_erasure(uuid) is
$$Every residual trace of a finished request's erased subjects: a registered column not in its erased state, a row
that should have been deleted, a PII key not replaced by its pseudonym, or an identifier of the subject found in an
unregistered text/json column during erasure and still there. Rows of a referenced table that others share are kept
by design (shared => keep) and are not residuals. Subjects appear as keyed hashes; subjects let back in
with pii.allow_return are not checked. Empty result = verified. Raises 55000 while subjects are still pending.
Example: select * from pii.verify_erasure('…'::uuid);$$;

-- Verification of a direct erasure (pii.erase_subjects): the subjects are named by key again.
create or replace function pii.verify_erasure_keys(subject_keys text[], scopes text[] default null, kind text default null, mode text default 'erase')
returns table (table_name text, column_name text, subject_hash text, detail text)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  kind_ text := (pii_internal.subject_kind(kind)).kind;
  hashes bytea[];
  pseudonyms text[];
begin
  perform pii_internal.check_erase_mode(mode);
  select pg_catalog.array_agg(r.subject_hash), pg_catalog.array_agg(r.pseudonym) into hashes, pseudonyms
  from pii_internal.resolve_subjects(subject_keys, scopes, kind => kind_) r
  where exists (select from pii_internal.tombstones tb where tb.subject_hash = r.subject_hash and tb.erased_at is not null);
  return query select * from pii_internal.vault_residuals(coalesce(hashes, '{}'));
  if hashes is not null then
    return query select * from pii_internal.subject_residuals(hashes, pseudonyms, mode, kind_, null);
  end if;
end
$$;
comment on function pii.verify_erasure_keys(text[], text[], text, text) is
$$Verifies a direct erasure (pii.erase_subjects) by naming its subjects again: the same checks as pii.verify_erasure for
the given keys (of a kind; omitted when the install has one) that are tombstoned as erased. Empty result = verified.
Example: select * from pii.verify_erasure_keys(array['42', '43']); select * from pii.verify_erasure_keys(array['7'], kind => 'staff');$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.verify_erasure(uuid), pii.verify_erasure_keys(text[], text[], text, text) to pii_operator, pii_auditor;
