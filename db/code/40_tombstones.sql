-- Repeatable code: keyed-hash SQL builders, subject resolution, tombstones (was_erased, allow_return).

-- Subject resolution (keys as given -> canonical keys + keyed hashes) and tombstones:
-- the PII-free memory of who was erased (F11, F28).

-- HMAC-SHA256 as SQL text, keyed by two SQL expressions (the RFC 2104 padded key), so that
-- set-based statements hash in C without a function call per row.
create or replace function pii_internal.keyed_hmac_sql(message_sql text, inner_key_sql text, outer_key_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select 'pg_catalog.sha256(' || outer_key_sql || ' operator(pg_catalog.||) pg_catalog.sha256(' || inner_key_sql
         || ' operator(pg_catalog.||) pg_catalog.convert_to(' || message_sql || ', ''UTF8'')))'
$$;
comment on function pii_internal.keyed_hmac_sql(text, text, text) is 'Internal. SQL text computing HMAC-SHA256 of message_sql under a padded key given as two SQL expressions.';

-- HMAC-SHA256 under the install key as SQL text, for statements in Lethe's own context. The
-- key is read by the statement (an InitPlan, once), never bound as a value: a bound value
-- becomes a constant of the plan, and any session may SET debug_print_plan (the operator's,
-- the sync role's whose write fires a guard, or the table owner's code inside a chunk), which
-- prints plans to the client and the server log.
create or replace function pii_internal.hmac_sql(message_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.keyed_hmac_sql(message_sql, '(select s.inner_key from pii_internal.secret s)', '(select s.outer_key from pii_internal.secret s)')
$$;
comment on function pii_internal.hmac_sql(text) is 'Internal. SQL text computing HMAC-SHA256 of message_sql with the install key (read from pii_internal.secret by the statement, never bound).';

-- The subject hash (see pii_internal.subject_hash) as SQL text over scope and key expressions.
create or replace function pii_internal.subject_hash_sql(scope_sql text, key_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac_sql('coalesce(' || scope_sql || ', '''') operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) ' || key_sql)
$$;
comment on function pii_internal.subject_hash_sql(text, text) is 'Internal. SQL text computing pii_internal.subject_hash(scope, key) under the install key (pii_internal.hmac_sql).';

-- The tombstone bucket (pii_internal.tombstones.bucket) as SQL text over scope and key
-- expressions: 24 bits of hashtextextended over the subject hash's message, seeded with 64
-- bits derived from the install key (read by the statement, never bound). A guard computes
-- it for every distinct key and the HMAC only for keys whose bucket a tombstone has.
create or replace function pii_internal.bucket_sql(scope_sql text, key_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format(
    'pg_catalog.int4(pg_catalog.hashtextextended(coalesce(%s, '''') operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %s, '
    '(select (''x'' operator(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(s.inner_key operator(pg_catalog.||) ''\x6275636b6574''::pg_catalog.bytea), 1, 8), ''hex''))::pg_catalog.bit(64)::pg_catalog.int8 '
    'from pii_internal.secret s)) operator(pg_catalog.&) 16777215)', scope_sql, key_sql)
$$;
comment on function pii_internal.bucket_sql(text, text) is 'Internal. SQL text of a subject''s tombstone bucket: 24 bits of a hash of (scope, key) seeded from the install key.';

-- The pseudonym of a value as SQL text: 'anon_', 96 bits of its HMAC and a 32-bit keyed
-- tag of those bits (for uuid columns, the same 128 bits as a version-8 UUID). The key is
-- the pseudonym key (pii_internal.pseudonym_key, bound as $3/$4), never the install key:
-- these expressions run in statements on application tables, with their owner's rights
-- and code (pii_internal.as_owner binds it).
-- Deterministic, so joins on pseudonymised columns survive; keyed, so it cannot be
-- reversed by guessing; tagged, so that a value is taken as already pseudonymised only
-- when it carries the tag: a real value shaped like a pseudonym (anon_fan@news.example,
-- a version-8 UUID, 'anon_' and 32 hex digits) is not, short of guessing 32 key bits.
create or replace function pii_internal.pseudonym_tag_sql(body_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select 'pg_catalog.left(pg_catalog.encode('
         || pii_internal.keyed_hmac_sql('''pseudonym tag'' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) ' || body_sql, '$3', '$4')
         || ', ''hex''), 8)'
$$;
comment on function pii_internal.pseudonym_tag_sql(text) is 'Internal. SQL text of the 8-hex keyed tag that ends a pseudonym (over its first 24 hex digits), pseudonym key bound as $3/$4.';

create or replace function pii_internal.pseudonym_sql(value_sql text, as_uuid boolean default false) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when as_uuid
    then '(' || x.body || ' operator(pg_catalog.||) ' || pii_internal.pseudonym_tag_sql(x.body) || ')::uuid'
    else '''anon_'' operator(pg_catalog.||) ' || x.body || ' operator(pg_catalog.||) ' || pii_internal.pseudonym_tag_sql(x.body)
  end
  from (select case when as_uuid
                 then 'overlay(pg_catalog.left(pg_catalog.encode(' || m.mac || ', ''hex''), 24) placing ''8'' from 13 for 1)'
                 else 'pg_catalog.left(pg_catalog.encode(' || m.mac || ', ''hex''), 24)' end as body
        from (select pii_internal.keyed_hmac_sql('''pseudonym'' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) (' || value_sql || ')::text', '$3', '$4') as mac) m) x
$$;
comment on function pii_internal.pseudonym_sql(text, boolean) is 'Internal. SQL text computing the pseudonym of a value (anon_<24 hex><8 hex tag>, or a version-8 uuid of the same digits) with the pseudonym key (pii_internal.pseudonym_key) bound as $3/$4.';

-- SQL predicate: the value is a pseudonym Lethe wrote (so erasing twice changes nothing):
-- its shape and its keyed tag, never the shape alone.
create or replace function pii_internal.is_pseudonym_sql(value_sql text, as_uuid boolean default false) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when as_uuid
    then pg_catalog.format('(pg_catalog.substr(%1$s, 13, 1) operator(pg_catalog.=) ''8'' and pg_catalog.right(%1$s, 8) operator(pg_catalog.=) %2$s)',
                           x.hex, pii_internal.pseudonym_tag_sql(pg_catalog.format('pg_catalog.left(%s, 24)', x.hex)))
    else pg_catalog.format('((%1$s)::text operator(pg_catalog.~) ''^anon_[0-9a-f]{32}$'' and pg_catalog.right((%1$s)::text, 8) operator(pg_catalog.=) %2$s)',
                           value_sql, pii_internal.pseudonym_tag_sql(pg_catalog.format('pg_catalog.substr((%s)::text, 6, 24)', value_sql)))
  end
  from (select pg_catalog.format('pg_catalog.replace((%s)::text, ''-'', '''')', value_sql) as hex) x
$$;
comment on function pii_internal.is_pseudonym_sql(text, boolean) is 'Internal. SQL predicate: the value is a Lethe pseudonym (shape and keyed tag), pseudonym key bound as $3/$4.';
-- Pseudonyms computed in Lethe's own context (keys it holds, values a deputy returned):
-- one statement for the array, in the order given.
-- The key is bound (pseudonym builders serve the deputies, which cannot read it), so the
-- plan that holds it is never printed (see pii_internal.hmac_sql).
create or replace function pii_internal.pseudonyms(vals text[]) returns text[]
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
set debug_print_plan = off
as $$
declare
  pk pii_internal.pseudonym_key;
  result text[];
begin
  select * into pk from pii_internal.pseudonym_key;
  execute pg_catalog.format('select pg_catalog.array_agg(%s order by u.i) from unnest($1::text[]) with ordinality as u (v, i)',
                            pii_internal.pseudonym_sql('u.v'))
    into result using vals, null::text[], pk.inner_key, pk.outer_key;
  return coalesce(result, '{}');
end
$$;
comment on function pii_internal.pseudonyms(text[]) is 'Internal. The pseudonyms of text values (pii_internal.pseudonym_sql under the pseudonym key), in order.';

comment on table pii_internal.tombstones is 'One row per subject asked to be forgotten: keyed hash only (and, when the key is PII, its pseudonym). Guards stop these subjects from coming back.';
revoke all on pii_internal.tombstones from public;

-- Whether a type (format_type text, domains resolved to their base type) is the citext
-- extension's case-insensitive text.
create or replace function pii_internal.is_citext(type_name text) returns boolean
language plpgsql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select exists (
      select from pg_catalog.pg_type ty
      join pg_catalog.pg_type base on base.oid = case when ty.typtype = 'd' then ty.typbasetype else ty.oid end
      join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_type'::regclass and d.objid = base.oid and d.deptype = 'e'
      join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'citext'
      where ty.oid = pg_catalog.to_regtype(type_name) and base.typname = 'citext')
  );
end
$$;
comment on function pii_internal.is_citext(text) is 'Internal. Whether a type is (a domain over) the citext extension''s type.';

-- Keys are hashed, compared and pseudonymised in their canonical text form: the text of
-- the value cast to the key column's type (' 42' and '42' are one key), and for citext
-- keys its lower case, which is what citext's own = compares (Bob@X.example and
-- bob@x.example are one person). key_type is the column's format_type text.
create or replace function pii_internal.key_text_sql(value_sql text, key_type text) returns text
language plpgsql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select case when pii_internal.is_citext(key_type)
                then 'pg_catalog.lower((' || value_sql || ')::text)'
                else '(' || value_sql || ')::text' end
  );
end
$$;
comment on function pii_internal.key_text_sql(text, text) is 'Internal. SQL text of a key''s canonical text form (lower case for citext keys), as hashed and compared.';

-- The key type's own equality operator, schema-qualified (operator(public.=) for
-- citext): under Lethe's pinned search_path a bare = on an extension type resolves to
-- pg_catalog's text =, which compares case-sensitively.
create or replace function pii_internal.key_equality_sql(key_type text) returns text
language plpgsql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select coalesce(
      (select pg_catalog.format('operator(%I.%s)', n.nspname, o.oprname)
       from pg_catalog.pg_operator o join pg_catalog.pg_namespace n on n.oid = o.oprnamespace
       where o.oprname = '=' and o.oprleft = pg_catalog.to_regtype(key_type) and o.oprright = o.oprleft
       limit 1),
      'operator(pg_catalog.=)')
  );
end
$$;
comment on function pii_internal.key_equality_sql(text) is 'Internal. The schema-qualified = of a key type (its own, e.g. citext''s), for statements under the pinned search_path.';

-- How an error names a key: its position in the call, or its row in an imported file.
create or replace function pii_internal.key_position(position_ integer, source_rows bigint[]) returns text
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when source_rows is null then 'subject key #' || position_
              else 'row ' || source_rows[position_] || ': subject key' end
$$;
comment on function pii_internal.key_position(integer, bigint[]) is 'Internal. Names a key in an error message by position (or CSV row), never by value.';

-- Keys (and scopes), one per position, in canonical text: cast through the key and scope
-- column types with the subject table owner's rights (a domain's CHECK or a cast on the key
-- type is their code, never run as Lethe), the key in pii_internal.key_text_sql's form.
-- Lethe only hashes what comes back. A bad key raises data_exception (22xxx).
create or replace function pii_internal.canonical_subjects(subj pii.subject_table, subject_keys text[], scopes text[],
                                                           out found_keys text[], out found_scopes text[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  key_type text := pii_internal.column_type(subj.relid, subj.key_attnum);
  scope_type text := case when subj.scope_attnum is not null then pii_internal.column_type(subj.relid, subj.scope_attnum) end;
  canonical record;
begin
  canonical := pii_internal.as_owner(subj.relid, pg_catalog.format(
    $q$select pg_catalog.array_agg(%s order by u.i), pg_catalog.array_agg(%s order by u.i)
       from unnest($1::text[], $2::text[]) with ordinality as u (k, s, i)$q$,
    pii_internal.key_text_sql(pg_catalog.format('u.k::%s', key_type), key_type), case when scope_type is null then 'null::text' else pg_catalog.format('(u.s::%s)::text', scope_type) end),
    true, subject_keys, coalesce(scopes, pg_catalog.array_fill(null::text, array[coalesce(pg_catalog.cardinality(subject_keys), 0)])));
  found_keys := canonical.found_keys;
  found_scopes := canonical.found_scopes;
end
$$;
comment on function pii_internal.canonical_subjects(pii.subject_table, text[], text[]) is 'Internal. Keys and scopes, by position, cast through their column types with the subject table owner''s rights, in canonical text.';

-- Checks keys (and scopes) as callers give them and casts them to canonical text (through
-- the key and scope column types, so ' 42' and '42', or upper- and lower-case UUIDs, are
-- one subject), one per position, not deduplicated. Validates everything first; a key the
-- type refuses is named by position (or CSV row: source_rows), never by value.
create or replace function pii_internal.canonical_input(subj pii.subject_table, subject_keys text[], scopes text[] default null,
                                      key_limit integer default null, source_rows bigint[] default null,
                                      out found_keys text[], out found_scopes text[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  canonical record;
  n integer := coalesce(pg_catalog.cardinality(subject_keys), 0);
  max_keys integer;
  key_type text;
  scope_type text;
  bad integer;
begin
  if subject_keys is null then
    raise exception 'subject_keys must not be NULL' using errcode = '22004';
  end if;
  select coalesce(key_limit, s.max_keys_per_call) into max_keys from pii.settings s;
  if n > max_keys then
    raise exception '% subject keys in one call; the limit is %', n, max_keys using errcode = '54000',
      hint = 'Split the batch (pii.settings.max_keys_per_call, max_keys_per_request); pii.request_erasure processes large requests in chunks.';
  end if;
  bad := pg_catalog.array_position(subject_keys, null);
  if bad is not null then
    raise exception '% is NULL', pii_internal.key_position(bad, source_rows) using errcode = '22004';
  end if;
  if subj.scope_attnum is null then
    if scopes is not null then
      raise exception 'scopes given, but the subject table % is not scoped', pii_internal.qualified_name(subj.relid) using errcode = '22023';
    end if;
  else
    if scopes is null or pg_catalog.cardinality(scopes) = 0 then
      raise exception 'the subject table % is scoped by %: scopes are required', pii_internal.qualified_name(subj.relid), pii_internal.column_name(subj.relid, subj.scope_attnum)
        using errcode = '22023', hint = 'Pass one scope for all keys, or one per key.';
    end if;
    if pg_catalog.cardinality(scopes) not in (1, n) then
      raise exception 'scopes has % elements; expected 1 or % (one per key)', pg_catalog.cardinality(scopes), n using errcode = '22023';
    end if;
    bad := pg_catalog.array_position(scopes, null);
    if bad is not null then
      raise exception 'scope #% is NULL', bad using errcode = '22004';
    end if;
    if pg_catalog.cardinality(scopes) = 1 and n > 1 then
      scopes := pg_catalog.array_fill(scopes[1], array[n]);
    end if;
    scope_type := pii_internal.column_type(subj.relid, subj.scope_attnum);
  end if;
  key_type := pii_internal.column_type(subj.relid, subj.key_attnum);

  begin
    canonical := pii_internal.canonical_subjects(subj, subject_keys, scopes);
    found_keys := canonical.found_keys;
    found_scopes := canonical.found_scopes;
  exception when data_exception then
    -- Name the position, never the value: keys are personal data. With source rows (a CSV
    -- import, staged in no particular order) the lowest bad row is named.
    if source_rows is not null then
      select pg_catalog.array_agg(u.k order by u.r), pg_catalog.array_agg(u.r order by u.r) into subject_keys, source_rows
      from unnest(subject_keys, source_rows) as u (k, r);
    end if;
    if pg_catalog.current_setting('server_version_num')::integer >= 160000 then
      bad := (pii_internal.as_owner(subj.relid, pg_catalog.format(
        'select array[pg_catalog.min(i)::text], null::text[] from pg_catalog.generate_subscripts($1, 1) i where not pg_catalog.pg_input_is_valid($1[i], %L)', key_type),
        true, subject_keys, null)).found_keys[1]::integer;
    elsif key_type in ('bigint', 'integer', 'smallint', 'uuid') then
      -- Before PostgreSQL 16 (no pg_input_is_valid): the common key types by pattern.
      select pg_catalog.min(i) into bad from pg_catalog.generate_subscripts(subject_keys, 1) i
      where subject_keys[i] !~ case when key_type = 'uuid' then '^\s*\{?[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}\}?\s*$'
                                    else '^\s*[+-]?[0-9]+\s*$' end;
    end if;
    if bad is not null then
      raise exception '% is not a valid %', pii_internal.key_position(bad, source_rows), key_type using errcode = '22P02';
    elsif scope_type is not null then
      raise exception 'subject keys must be valid % and scopes valid %', key_type, scope_type using errcode = '22P02';
    else
      raise exception 'subject keys must be valid %', key_type using errcode = '22P02';
    end if;
  end;
end
$$;
comment on function pii_internal.canonical_input(pii.subject_table, text[], text[], integer, bigint[]) is 'Internal. Validates keys and scopes of a subject table as callers give them (NULLs, limit, scope shape) and returns them in canonical text, one per position (pii_internal.canonical_subjects); a bad key is named by position or CSV row.';

-- Resolves keys (and scopes) as callers give them to canonical text
-- (pii_internal.canonical_input), deduplicated, with their hashes and, when asked (an
-- erasure writes them on the tombstones), their tombstone buckets: one pass over the keys.
drop function if exists pii_internal.resolve_subjects(text[], text[], integer, bigint[], text);
create or replace function pii_internal.resolve_subjects(subject_keys text[], scopes text[] default null, key_limit integer default null,
                                      source_rows bigint[] default null, kind text default null, with_buckets boolean default false)
returns table (scope text, subject_key text, subject_hash bytea, pseudonym text, first_position integer, bucket integer)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  canonical record;
  subj pii.subject_table;
begin
  subj := pii_internal.subject_kind(kind);
  canonical := pii_internal.canonical_input(subj, subject_keys, scopes, key_limit, source_rows);
  return query execute pg_catalog.format(
    -- Joined by position, not subscripted: a subscript of a text[] walks the array.
    $q$select r.s, r.k, %s, p.p, r.i, case when $6 then %s end
       from (select c.s, c.k, pg_catalog.min(c.i)::integer as i
             from unnest($1::text[], $2::text[]) with ordinality as c (k, s, i)
             group by c.s, c.k) r
       left join unnest($5::text[]) with ordinality as p (p, i) on p.i = r.i$q$,
    pii_internal.kind_hash_sql(subj.kind, 'r.s', 'r.k'), pii_internal.kind_bucket_sql(subj.kind, 'r.s', 'r.k'))
    using canonical.found_keys, canonical.found_scopes, null::bytea, null::bytea,
          case when subj.key_is_pii then pii_internal.pseudonyms(canonical.found_keys) end, with_buckets;
end
$$;
comment on function pii_internal.resolve_subjects(text[], text[], integer, bigint[], text, boolean) is 'Internal. Validates and canonicalises subject keys and scopes of a kind (NULL: the only kind); returns each distinct subject with its keyed hash (and pseudonym when the key is PII), the position where it first appears and, with with_buckets, its tombstone bucket (pii_internal.bucket_sql).';

-- Records subjects as asked-to-be-forgotten (a guard that met an erased person under a new
-- key); guards act on them from now on. A request's subjects are flagged by the statement
-- that writes its items (pii_internal.create_request). A tombstone that is there already and
-- would not change (it has its bucket, or none is given) is not written but locked FOR KEY
-- SHARE: that lock does not wait for a chunk erasing the subject right now (a chunk's update
-- changes no key), where an upsert's row lock would wait for the whole of that chunk. The
-- lock still keeps pii.allow_return (a delete) from removing such a tombstone before this
-- transaction ends.
drop function if exists pii_internal.flag_subjects(bytea[], text[], uuid, text, integer[]);
create or replace function pii_internal.flag_subjects(hashes bytea[], kind text, buckets integer[] default null)
returns bigint
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  with wanted as (
    select u.h, u.b from unnest(hashes, buckets) as u (h, b)
  ), kept as (
    select t.subject_hash from wanted w join pii_internal.tombstones t on t.subject_hash operator(pg_catalog.=) w.h
    where t.bucket is not null or w.b is null
    for key share of t
  ), ins as (
    insert into pii_internal.tombstones as t (subject_hash, kind, bucket)
    select w.h, flag_subjects.kind, w.b from wanted w
    where not exists (select from kept k where k.subject_hash operator(pg_catalog.=) w.h)
    on conflict (subject_hash) do update set bucket = coalesce(t.bucket, excluded.bucket)
    returning 1
  )
  select (select pg_catalog.count(*) from ins) operator(pg_catalog.+) (select pg_catalog.count(*) from kept)
$$;
comment on function pii_internal.flag_subjects(bytea[], text, integer[]) is 'Internal. Inserts tombstones (keyed hashes, with their buckets where known: pii_internal.kind_bucket_sql) for subjects of a kind that a guard found; idempotent.';

-- Its one caller, erase_subjects, gets the buckets from pii_internal.resolve_subjects now.
drop function if exists pii_internal.subject_buckets(text, text[], text[]);

-- Marks subjects erased by this transaction: one write per tombstone (inserted or
-- updated erased), never a flag followed by an update. With a request's filed_snapshot
-- (a chunk), a subject that an erasure not yet committed when the request was filed has
-- marked is left to that erasure: not written, not returned. Rows are written (and
-- locked) in the order of hashes, so overlapping requests queue up instead of
-- deadlocking. Returns the subjects to erase now, in hash order.
create or replace function pii_internal.mark_erased(hashes bytea[], pseudonyms text[], request_id uuid default null,
                                                    filed_snapshot pg_snapshot default null, kind text default null,
                                                    buckets integer[] default null)
returns bytea[]
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  with marked as (
    insert into pii_internal.tombstones as t (subject_hash, pseudonym, request_id, erased_at, erased_xact, kind, bucket)
    select u.h, u.p, mark_erased.request_id, pg_catalog.now(), pg_catalog.pg_current_xact_id(), mark_erased.kind, u.b
    from unnest(hashes, pseudonyms, buckets) as u (h, p, b)
    -- In hash order whatever the caller's: rows are locked in that order, and the primary
    -- key is written page after page instead of at random.
    order by u.h
    on conflict (subject_hash) do update
      set erased_at = excluded.erased_at, erased_xact = excluded.erased_xact,
          request_id = coalesce(excluded.request_id, t.request_id), bucket = coalesce(t.bucket, excluded.bucket)
      where mark_erased.filed_snapshot is null or t.erased_xact is null
         or pg_catalog.pg_visible_in_snapshot(t.erased_xact, mark_erased.filed_snapshot)
    returning t.subject_hash
  )
  select coalesce(pg_catalog.array_agg(m.subject_hash order by m.subject_hash), '{}') from marked m
$$;
comment on function pii_internal.mark_erased(bytea[], text[], uuid, pg_snapshot, text, integer[]) is 'Internal. Inserts or updates tombstones as erased by this transaction in one write each (a chunk skips subjects an erasure in flight at filing time covers); returns the subjects to erase now.';

create or replace function pii.was_erased(subject_key text, scope text default null, kind text default null)
returns table (erased boolean, flagged_at timestamptz, erased_at timestamptz, request_id uuid)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query
    select t.erased_at is not null, t.flagged_at, t.erased_at, t.request_id
    from pii_internal.resolve_subjects(array[subject_key], case when scope is null then null else array[scope] end, kind => kind) r
    join pii_internal.tombstones t on t.subject_hash = r.subject_hash;
  if not found then
    return query select false, null::timestamptz, null::timestamptz, null::uuid;
  end if;
end
$$;
comment on function pii.was_erased(text, text, text) is
$$Answers "was this person erased?" from the keyed hash, never storing or returning the identity:
erased (bool), when flagged, when erased, by which request. Example: select * from pii.was_erased('42');
Scoped installs pass the scope: select * from pii.was_erased('pl-1', scope => '2');
With several subject kinds, name the kind: select * from pii.was_erased('7', kind => 'staff');$$;

create or replace function pii.was_erased_hash(subject_hash text)
returns table (erased boolean, flagged_at timestamptz, erased_at timestamptz, request_id uuid)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select t.erased_at is not null, t.flagged_at, t.erased_at, t.request_id
  from pii_internal.tombstones t where t.subject_hash = pg_catalog.decode(was_erased_hash.subject_hash, 'hex')
$$;
comment on function pii.was_erased_hash(text) is 'Looks a subject up by its hex keyed hash, as shown in request items, verification reports and audit rows. Example: select * from pii.was_erased_hash(''9f2c…'');';

create or replace function pii.allow_return(subject_key text, scope text default null, kind text default null)
returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  h bytea;
begin
  select r.subject_hash into h
  from pii_internal.resolve_subjects(array[subject_key], case when scope is null then null else array[scope] end, kind => kind) r;
  delete from pii_internal.tombstones t where t.subject_hash = h;
  if not found then
    return false;
  end if;
  -- The person is back under any key: their identifiers no longer stop them either.
  delete from pii_internal.identifier_tombstones it where it.subject_hash = h;
  perform pii_internal.write_audit('allow_return', null, '{}'::jsonb, h);
  return true;
end
$$;
comment on function pii.allow_return(text, text, text) is
$$Lifts the tombstone of a person who legitimately comes back (signs up again): guards stop acting on them, by key
and by their identifiers (pii.allow_return_identifier lifts one identifier only). Audited with the keyed hash.
Returns false when there was no tombstone. Example: select pii.allow_return('42'); select pii.allow_return('7', kind => 'staff');$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.was_erased(text, text, text), pii.was_erased_hash(text) to pii_operator, pii_auditor;
grant execute on function pii.allow_return(text, text, text) to pii_operator;
