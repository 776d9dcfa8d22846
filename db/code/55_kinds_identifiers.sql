-- Repeatable code: subject kinds (several subject tables per install) and identifiers that
-- outlive the row (register_identifier, identifier tombstones, the guards' identifier probe,
-- allow_return_identifier). State: db/migrations/0015_subject_kinds_identifiers.sql.

comment on table pii.identifiers is 'Registered identifier columns (email, phone, username, national id, device id): their keyed hashes go into the subject''s tombstone at erasure, and guards refuse an erased person coming back under a new key by any of them.';
comment on table pii_internal.identifier_tombstones is 'Keyed hashes (never values) of erased subjects'' identifiers, by kind: what the guards probe for an erased person re-ingested under a new key.';
revoke all on pii.identifiers, pii_internal.identifier_tombstones from public;
grant select on pii.identifiers to pii_admin, pii_operator, pii_auditor;

---------------------------------------------------------------------------------------
-- Kinds

-- The kinds of this install, for messages: "customer", "staff".
create or replace function pii_internal.kind_list() returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.string_agg(pg_catalog.format('"%s"', s.kind), ', ' order by s.kind) from pii.subject_table s
$$;
comment on function pii_internal.kind_list() is 'Internal. The install''s subject kinds, quoted and comma-separated, for error messages.';

-- The subject table of a kind named in a call. NULL names the install's only kind; with
-- several kinds a kind is required (22023, the message lists them).
create or replace function pii_internal.subject_kind(kind text) returns pii.subject_table
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  n integer;
begin
  select pg_catalog.count(*) into n from pii.subject_table;
  if n = 0 then
    raise exception 'no subject table is registered yet' using errcode = '55000',
      hint = 'Call pii.register_subject_table(...) first.';
  end if;
  if kind is null then
    if n > 1 then
      raise exception 'this install has several subject kinds (%): name one with kind => ''…''', pii_internal.kind_list()
        using errcode = '22023', hint = 'SQL: kind => ''<kind>''; CLI: --kind <kind>; CSV: a kind column or --kind.';
    end if;
    select * into subj from pii.subject_table;
    return subj;
  end if;
  select * into subj from pii.subject_table s where s.kind operator(pg_catalog.=) subject_kind.kind;
  if subj.kind is null then
    raise exception 'unknown subject kind "%": this install has %', kind,
      case when n = 1 then 'one kind, ' || pii_internal.kind_list() else 'kinds ' || pii_internal.kind_list() end
      using errcode = '22023';
  end if;
  return subj;
end
$$;
comment on function pii_internal.subject_kind(text) is 'Internal. The subject table of a kind; NULL is the only kind (22023 listing the kinds when there are several, 55000 when there is none).';

-- The subject hash of a kind as SQL text: the first kind an install registered hashes
-- (scope, key) as before; a later kind's scope is prefixed with its hash_prefix, so two
-- kinds' subjects with the same key are two subjects.
create or replace function pii_internal.kind_scope_sql(kind text, scope_sql text) returns text
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when s.hash_prefix operator(pg_catalog.=) '' then scope_sql
              else pg_catalog.format('(%L operator(pg_catalog.||) coalesce(%s, ''''))', s.hash_prefix, scope_sql) end
  from pii.subject_table s where s.kind operator(pg_catalog.=) kind_scope_sql.kind
$$;
comment on function pii_internal.kind_scope_sql(text, text) is 'Internal. SQL text of the scope a kind''s subjects are hashed with (the kind''s hash_prefix before it).';

create or replace function pii_internal.kind_hash_sql(kind text, scope_sql text, key_sql text) returns text
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.subject_hash_sql(pii_internal.kind_scope_sql(kind, scope_sql), key_sql)
$$;
comment on function pii_internal.kind_hash_sql(text, text, text) is 'Internal. SQL text of a kind''s subject hash (pii_internal.subject_hash with the kind''s prefix); reads the install key in the statement, never bound.';

-- The same for a subject's tombstone bucket (pii_internal.bucket_sql).
create or replace function pii_internal.kind_bucket_sql(kind text, scope_sql text, key_sql text) returns text
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.bucket_sql(pii_internal.kind_scope_sql(kind, scope_sql), key_sql)
$$;
comment on function pii_internal.kind_bucket_sql(text, text, text) is 'Internal. SQL text of a kind''s tombstone bucket (pii_internal.bucket_sql with the kind''s prefix).';

-- Every registered table belongs to one kind: its parent's, the subject table's own, or,
-- for a table registered by a subject column, the kind of the subject table that column's
-- foreign key references (the only kind when there is no such key and one kind).
create or replace function pii_internal.set_table_kind() returns trigger
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  fk_kinds text[];
begin
  if new.parent_relid is not null then
    select t.kind into new.kind from pii.tables t where t.relid = new.parent_relid;
    return new;
  end if;
  if exists (select from pii.subject_table s where s.relid = new.relid) then
    select s.kind into new.kind from pii.subject_table s where s.relid = new.relid;
    return new;
  end if;
  select pg_catalog.array_agg(distinct s.kind) into fk_kinds
  from pg_catalog.pg_constraint c join pii.subject_table s on s.relid = c.confrelid
  where c.conrelid = new.relid and c.contype = 'f' and c.conkey = array[new.subject_attnum];
  if pg_catalog.cardinality(fk_kinds) = 1 then
    new.kind := fk_kinds[1];
  elsif tg_op = 'UPDATE' and old.kind is not null and pg_catalog.cardinality(fk_kinds) is null then
    new.kind := old.kind;
  elsif (select pg_catalog.count(*) from pii.subject_table) > 1 then
    raise exception 'which subject kind does % belong to? no foreign key from %.% to a subject table (kinds %)',
      pii_internal.qualified_name(new.relid), pii_internal.qualified_name(new.relid), pii_internal.column_name(new.relid, new.subject_attnum), pii_internal.kind_list()
      using errcode = '22023', hint = 'Add the foreign key to the subject table of its kind, or register the table under a registered parent (pii.register_child_table).';
  else
    new.kind := (pii_internal.subject_kind(null)).kind;
  end if;
  return new;
end
$$;
comment on function pii_internal.set_table_kind() is 'Internal. BEFORE trigger on pii.tables: a registered table''s kind, from its parent, its subject table, or its subject column''s foreign key.';

create or replace trigger tables_kind before insert or update of parent_relid, subject_attnum on pii.tables
  for each row execute function pii_internal.set_table_kind();

---------------------------------------------------------------------------------------
-- Identifiers

-- A value made canonical before it is hashed (value_sql is text; NULL when nothing is left).
create or replace function pii_internal.normalised_sql(normaliser text, value_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format('nullif(%s, '''')', case normaliser
    when 'email' then pg_catalog.format('pg_catalog.lower(pg_catalog.btrim(%s))', value_sql)
    when 'lower_trim' then pg_catalog.format('pg_catalog.lower(pg_catalog.btrim(%s))', value_sql)
    when 'trim' then pg_catalog.format('pg_catalog.btrim(%s)', value_sql)
    when 'phone' then pg_catalog.format('pg_catalog.regexp_replace(%s, ''[^0-9]'', '''', ''g'')', value_sql)
    else value_sql end)
$$;
comment on function pii_internal.normalised_sql(text, text) is 'Internal. SQL text of a value under an identifier normaliser: email / lower_trim lower(btrim()), trim btrim(), phone digits only, exact as is; empty is NULL.';

-- The rows (alias t) of a table's identifier columns as (identifier || chr(31) || normalised
-- value) pairs, for a LATERAL VALUES list; only values not in their erased state. NULL when
-- the table has no identifier column.
create or replace function pii_internal.identifier_values_sql(tbl regclass) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.string_agg(pg_catalog.format('(%L operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %s)',
                               i.identifier,
                               case when c.erase is null or c.erase = 'keep' then pii_internal.normalised_sql(i.normaliser, pg_catalog.format('t.%I::text', a.attname))
                                    else pg_catalog.format('case when %s then null else %s end', pii_internal.column_erased_sql(i.relid, i.attnum, c.erase),
                                                           pii_internal.normalised_sql(i.normaliser, pg_catalog.format('t.%I::text', a.attname))) end),
                               ', ' order by i.attnum)
  from pii.identifiers i
  join pg_catalog.pg_attribute a on a.attrelid = i.relid and a.attnum = i.attnum and not a.attisdropped
  left join pii.columns c on c.relid = i.relid and c.attnum = i.attnum
  where i.relid = tbl
$$;
comment on function pii_internal.identifier_values_sql(regclass) is 'Internal. VALUES items (identifier chr(31) normalised value) of a table''s identifier columns (alias t), erased values left out.';

-- The keyed hash of an identifier value as SQL text over an "identifier chr(31) value" expression.
create or replace function pii_internal.identifier_hash_sql(kind text, pair_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac_sql(pg_catalog.format('%L operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %s', 'identifier' || pg_catalog.chr(31) || kind, pair_sql))
$$;
comment on function pii_internal.identifier_hash_sql(text, text) is 'Internal. SQL text of an identifier''s keyed hash (kind, identifier, normalised value); reads the install key in the statement, never bound.';

create or replace function pii.register_identifier(tbl regclass, col name, normaliser text, identifier text default null)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  n smallint;
  rule pii.columns;
  name_ text;
begin
  reg := pii_internal.registered_table(tbl);
  n := pii_internal.column_attnum(tbl, col);
  if normaliser is null or normaliser not in ('email', 'phone', 'lower_trim', 'trim', 'exact') then
    raise exception 'unknown identifier normaliser "%" (column %.%)', normaliser, pii_internal.qualified_name(tbl), col
      using errcode = '22023', hint = 'Expected one of: email (lower(trim())), phone (digits only), lower_trim, trim, exact.';
  end if;
  name_ := coalesce(identifier, case when normaliser in ('email', 'phone') then normaliser else col end);
  if name_ !~ '^[a-z][a-z0-9_]{0,62}$' then
    raise exception 'identifier name "%" must be lower case letters, digits and _ (column %.%)', name_, pii_internal.qualified_name(tbl), col
      using errcode = '22023', hint = 'Pass identifier => ''username'' (the same name in every table that holds it).';
  end if;
  select * into rule from pii.columns c where c.relid = tbl and c.attnum = n;
  if rule.relid is null or rule.erase = 'keep' then
    raise exception 'column %.% must be registered with an erase strategy other than keep before it is an identifier', pii_internal.qualified_name(tbl), col
      using errcode = '55000', hint = pg_catalog.format('select pii.register_column(%L, %L, ''null'');', pii_internal.qualified_name(tbl), col);
  end if;
  insert into pii.identifiers (relid, attnum, identifier, normaliser)
  values (tbl, n, name_, normaliser)
  on conflict (relid, attnum) do update set identifier = excluded.identifier, normaliser = excluded.normaliser;
  perform pii_internal.write_audit('register_identifier', null, pg_catalog.jsonb_build_object(
    'table', pii_internal.qualified_name(tbl), 'column', col, 'identifier', name_, 'normaliser', normaliser, 'kind', reg.kind));
end
$$;
comment on function pii.register_identifier(regclass, name, text, text) is
$$Declares a registered PII column an identifier of its kind's subjects (email, phone, username, national id, device
id). At erasure the keyed hash of each normalised value (never the value) goes into the subject's tombstone; guards
then catch the erased person written again under a new key by that identifier. normaliser: email / lower_trim
(lower(trim())), phone (digits only), trim, exact. identifier names the value across tables (default: email or phone
for those normalisers, else the column name). Example: select pii.register_identifier('crm.customers', 'email', 'email');$$;

create or replace function pii.unregister_identifier(tbl regclass, col name) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  delete from pii.identifiers i where i.relid = tbl and i.attnum = pii_internal.column_attnum(tbl, col);
  if not found then
    return false;
  end if;
  perform pii_internal.write_audit('unregister_identifier', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'column', col));
  return true;
end
$$;
comment on function pii.unregister_identifier(regclass, name) is 'Stops treating a column as an identifier (identifier tombstones already written stay). Example: select pii.unregister_identifier(''crm.customers'', ''email'');';

-- At erasure, before the plan runs: the keyed hashes of the subjects' identifiers (each
-- distinct value hashed once), one statement per table holding identifiers, read with
-- the table owner's rights. Returns how many identifier tombstones were written.
create or replace function pii_internal.tombstone_identifiers(kind text, subject_keys text[], scopes text[]) returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbl regclass;
  path record;
  rows_sql record;
  found_ record;
  total bigint := 0;
  n bigint;
begin
  for tbl in select distinct i.relid from pii.identifiers i join pii.tables t on t.relid = i.relid
             where t.kind operator(pg_catalog.=) tombstone_identifiers.kind and exists (select from pg_catalog.pg_class c where c.oid = i.relid)
             order by i.relid loop
    path := pii_internal.subject_key_sql(tbl);
    rows_sql := pii_internal.subject_rows_sql(tbl);
    found_ := pii_internal.as_owner(tbl, pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(pg_catalog.encode(%s, 'hex') operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) pg_catalog.split_part(x.v, pg_catalog.chr(31), 1)), '{}'),
                coalesce(pg_catalog.array_agg(pg_catalog.encode(%s, 'hex')), '{}')
         from (select distinct v.v, %s as k, %s::text as s
               from %s as t%s cross join lateral (values %s) as v (v)
               where %s and v.v is not null) x$q$,
      pii_internal.identifier_hash_sql(kind, 'x.v'), pii_internal.kind_hash_sql(kind, 'x.s', 'x.k'),
      pii_internal.key_text_sql(path.key_sql, path.key_type), coalesce(path.scope_sql, 'null'),
      pii_internal.qualified_name(tbl), case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end,
      pii_internal.identifier_values_sql(tbl), rows_sql.where_sql),
      true, subject_keys, scopes);
    insert into pii_internal.identifier_tombstones (kind, identifier_hash, subject_hash, identifier)
    select tombstone_identifiers.kind, pg_catalog.decode(pg_catalog.split_part(u.h, pg_catalog.chr(31), 1), 'hex'), pg_catalog.decode(u.s, 'hex'),
           pg_catalog.split_part(u.h, pg_catalog.chr(31), 2)
    from unnest(found_.found_keys, found_.found_scopes) as u (h, s)
    on conflict do nothing;
    get diagnostics n = row_count;
    total := total + n;
  end loop;
  return total;
end
$$;
comment on function pii_internal.tombstone_identifiers(text, text[], text[]) is 'Internal. Writes the keyed hashes of erased subjects'' identifiers (each distinct value hashed once, one statement per table) into pii_internal.identifier_tombstones.';

-- The guards' identifier probe: among rows written to registered table tbl (source, alias
-- t, read by the deputy of owner_tbl), the identifier values (identifier chr(31)
-- normalised value) of erased persons of the table's kind, each distinct value hashed once
-- and probed by the primary key of pii_internal.identifier_tombstones. On the kind's subject table
-- the rows carrying them are the erased person under a new key: their keys are merged into
-- the key hits of pii_internal.guard_hits (such a row carries PII), with their hashes and
-- tombstone buckets.
create or replace function pii_internal.identifier_hits(tbl regclass, owner_tbl regclass, source text, new_rows text[],
                                                        hit_keys text[], hit_scopes text[], hit_pii boolean[],
                                                        out keys text[], out scopes text[], out pii boolean[],
                                                        out pairs text[], out new_hashes bytea[], out new_buckets integer[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  values_sql text;
  path record;
  found_ record;
  is_subject boolean;
begin
  keys := hit_keys; scopes := hit_scopes; pii := hit_pii; pairs := '{}'; new_hashes := '{}'; new_buckets := '{}';
  select * into reg from pii.tables t where t.relid = tbl;
  values_sql := pii_internal.identifier_values_sql(tbl);
  if values_sql is null or not exists (select from pii_internal.identifier_tombstones it where it.kind operator(pg_catalog.=) reg.kind) then
    return;
  end if;
  path := pii_internal.subject_key_sql(tbl);
  is_subject := exists (select from pii.subject_table s where s.relid = tbl);
  -- The deputy returns distinct (scope marker chr(31) key, identifier chr(31) value) pairs.
  found_ := pii_internal.as_owner(owner_tbl, pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(x.k), '{}'), coalesce(pg_catalog.array_agg(x.v), '{}')
       from (select distinct case when %1$s is null then '0' else '1' operator(pg_catalog.||) (%1$s)::text end
                             operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %2$s as k, v.v
             from %3$s as t%4$s cross join lateral (values %5$s) as v (v)
             where %6$s and v.v is not null) x$q$,
    coalesce(path.scope_sql, 'null::text'), pii_internal.key_text_sql(path.key_sql, path.key_type),
    source, case when path.from_list = '' then '' else ', ' || path.from_list end, values_sql,
    case when path.join_sql = '' then 'true' else path.join_sql end),
    true, null, null, new_rows);
  if pg_catalog.cardinality(found_.found_keys) = 0 then
    return;
  end if;
  execute pg_catalog.format(
    $q$with c as (select u.k, u.v from unnest($1::text[], $2::text[]) as u (k, v)),
            erased as (select d.v from (select distinct c.v from c) d
                       where exists (select from pii_internal.identifier_tombstones it
                                     where it.kind operator(pg_catalog.=) $5 and it.identifier_hash operator(pg_catalog.=) %s)),
            hit as (select distinct case when pg_catalog.left(c.k, 1) operator(pg_catalog.=) '0' then null
                                         else pg_catalog.substr(pg_catalog.split_part(c.k, pg_catalog.chr(31), 1), 2) end as s,
                                    pg_catalog.substr(c.k, pg_catalog.strpos(c.k, pg_catalog.chr(31)) operator(pg_catalog.+) 1) as k
                    from c join erased e on e.v operator(pg_catalog.=) c.v where $9),
            merged as (select h.k, h.s, h.p from unnest($6::text[], $7::text[], $8::boolean[]) as h (k, s, p)
                       union all select hit.k, hit.s, true from hit)
       select coalesce((select pg_catalog.array_agg(e.v) from erased e), '{}'),
              coalesce((select pg_catalog.array_agg(%s order by hit.k, hit.s) from hit), '{}'),
              coalesce((select pg_catalog.array_agg(%s order by hit.k, hit.s) from hit), '{}'),
              coalesce(pg_catalog.array_agg(m.k), '{}'), coalesce(pg_catalog.array_agg(m.s), '{}'), coalesce(pg_catalog.array_agg(m.p), '{}')
       from (select merged.k, merged.s, pg_catalog.bool_or(merged.p) as p from merged group by 1, 2) m$q$,
    pii_internal.identifier_hash_sql(reg.kind, 'd.v'), pii_internal.kind_hash_sql(reg.kind, 'hit.s', 'hit.k'),
    pii_internal.kind_bucket_sql(reg.kind, 'hit.s', 'hit.k'))
    into pairs, new_hashes, new_buckets, keys, scopes, pii
    using found_.found_keys, found_.found_scopes, null::bytea, null::bytea, reg.kind, hit_keys, hit_scopes, hit_pii, is_subject;
end
$$;
comment on function pii_internal.identifier_hits(regclass, regclass, text, text[], text[], text[], boolean[]) is 'Internal. The erased persons'' identifier values among a guard''s written rows (keyed hash probe by index); on a subject table, also the rows'' keys (merged into the key hits) and their subject hashes.';

-- What a guard does to rows of a table other than the subject table that carry an erased
-- person's identifier (pairs: identifier chr(31) normalised value), whatever subject they
-- belong to: reject the statement, drop the new rows (skip, INSERT), or erase these rows
-- only (scrub; rows of delete tables are deleted), never the subject's other rows.
create or replace function pii_internal.guard_identifier_rows(tbl regclass, row_type text, new_rows text[], pairs text[], mode text, op text)
returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  carries text := pg_catalog.format('exists (select from (values %s) as v (v) where v.v operator(pg_catalog.=) any ($1::text[]))',
                                    pii_internal.identifier_values_sql(tbl));
  pk_cols text;
  set_list text;
  rows_of text;
begin
  if mode = 'reject' then
    raise exception 'rows carrying an erased person''s identifier cannot be written to % (% blocked)', pii_internal.qualified_name(tbl), pg_catalog.lower(op)
      using errcode = 'PII01',
            hint = 'Stop sending data of erased people, or lift an identifier tombstone with pii.allow_return_identifier(...) for a person who legitimately came back.';
  end if;
  -- The written rows, by primary key when there is one (else every row carrying the value).
  select pg_catalog.string_agg(pg_catalog.format('t.%I = n.%I', a.attname, a.attname), ' and ') into pk_cols
  from pg_catalog.pg_constraint c join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
  where c.conrelid = tbl and c.contype = 'p' and new_rows is not null;
  rows_of := case when pk_cols is null then '' else pg_catalog.format(' pg_catalog.unnest($5::text[]::%s[]) as n', row_type) end;
  if pii_internal.erase_action(tbl) = 'delete' or (mode = 'skip' and op = 'INSERT') then
    return (pii_internal.as_owner(tbl, pg_catalog.format('delete from %s as t%s where %s and %s', pii_internal.qualified_name(tbl),
              case when rows_of = '' then '' else ' using' || rows_of end, coalesce(pk_cols, 'true'), carries),
              false, pairs, null, new_rows)).n;
  end if;
  set_list := pii_internal.erase_set_list(tbl);
  if set_list is null then
    return 0;
  end if;
  return (pii_internal.as_owner(tbl, pg_catalog.format('update %s as t set %s%s where %s and %s and not (%s)', pii_internal.qualified_name(tbl), set_list,
            case when rows_of = '' then '' else ' from' || rows_of end, coalesce(pk_cols, 'true'), carries,
            pii_internal.row_erased_sql(tbl, 'anonymize')),
            false, pairs, null, new_rows)).n;
end
$$;
comment on function pii_internal.guard_identifier_rows(regclass, text, text[], text[], text, text) is 'Internal. Rejects, drops or erases the written rows (of a table other than the subject table) that carry an erased person''s identifier, with the table owner''s rights.';

create or replace function pii.allow_return_identifier(identifier text, value text, kind text default null)
returns bigint
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table := pii_internal.subject_kind(kind);
  normaliser_ text;
  h bytea;
  n bigint;
begin
  if value is null then
    raise exception 'value must not be NULL' using errcode = '22004';
  end if;
  select i.normaliser into normaliser_ from pii.identifiers i join pii.tables t on t.relid = i.relid
  where t.kind operator(pg_catalog.=) subj.kind and i.identifier operator(pg_catalog.=) allow_return_identifier.identifier
  limit 1;
  if normaliser_ is null then
    raise exception 'no identifier "%" is registered for kind "%"', identifier, subj.kind using errcode = '22023';
  end if;
  execute pg_catalog.format('select %s', pii_internal.identifier_hash_sql(subj.kind,
            pg_catalog.format('(%L operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %s)', identifier, pii_internal.normalised_sql(normaliser_, '$1'))))
    into h using value, null::text, null::bytea, null::bytea;
  delete from pii_internal.identifier_tombstones it where it.kind operator(pg_catalog.=) subj.kind and it.identifier_hash operator(pg_catalog.=) h;
  get diagnostics n = row_count;
  if n > 0 then
    perform pii_internal.write_audit('allow_return_identifier', null, pg_catalog.jsonb_build_object('kind', subj.kind, 'identifier', identifier, 'tombstones', n));
  end if;
  return n;
end
$$;
comment on function pii.allow_return_identifier(text, text, text) is
$$Lets a person who legitimately comes back under a new key (signs up again with the same email) through the
identifier guards: removes the identifier tombstones of that value (normalised as registered). Returns how many were
removed. Audited without the value. Example: select pii.allow_return_identifier('email', 'Ann@Example.com', kind => 'customer');$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.register_identifier(regclass, name, text, text), pii.unregister_identifier(regclass, name) to pii_admin;
grant execute on function pii.allow_return_identifier(text, text, text) to pii_operator;
