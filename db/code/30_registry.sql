-- Repeatable code: the registry (register_*, unregister_*, lint, registered_* views) and its checks.

comment on table pii.subject_table is 'The tables whose rows are data subjects, one per kind (customer, staff). hash_prefix: what a kind''s subject hashes are prefixed with ('''' for the first kind).';
comment on table pii.tables is 'Registered tables: linked to the subject by subject_attnum, or through a registered parent (parent_fk_attnum -> parent_key_attnum).';
comment on table pii.columns is 'Registered PII columns: erase strategy (on erasure), mask strategy (masked views), category.';

revoke all on pii.subject_table, pii.tables, pii.columns from public;
grant select on pii.subject_table, pii.tables, pii.columns to pii_admin, pii_operator, pii_auditor;

---------------------------------------------------------------------------------------
-- Strategies, parsed once (docs/architecture.md, "Adding a strategy")

-- 'set:DEACTIVATED' is ('set', 'DEACTIVATED'), 'jsonb_remove:a,b' is ('jsonb_remove', 'a,b'),
-- 'null' is ('null', NULL). Erase, erased-state, guard and mask SQL all dispatch on name.
create or replace function pii_internal.parse_strategy(strategy text, out name text, out argument text)
language sql immutable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when x.p operator(pg_catalog.>) 0 then pg_catalog.left(strategy, x.p operator(pg_catalog.-) 1) else strategy end,
         case when x.p operator(pg_catalog.>) 0 then pg_catalog.substr(strategy, x.p operator(pg_catalog.+) 1) end
  from (select pg_catalog.strpos(strategy, ':') as p) x
$$;
comment on function pii_internal.parse_strategy(text) is 'Internal. Splits a strategy into its name and the argument after the first colon (NULL without one).';

-- The keys of a jsonb_remove:<key>[,<key>…] argument, trimmed.
create or replace function pii_internal.strategy_keys(argument text) returns text[]
language sql immutable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.array_agg(pg_catalog.btrim(k)) from pg_catalog.unnest(pg_catalog.string_to_array(argument, ',')) k
$$;
comment on function pii_internal.strategy_keys(text) is 'Internal. The trimmed keys of a jsonb_remove argument.';

---------------------------------------------------------------------------------------
-- Small catalog helpers (internal)

create or replace function pii_internal.qualified_name(tbl regclass) returns text
language plpgsql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select pg_catalog.format('%I.%I', n.nspname, c.relname)
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.oid = tbl
  );
end
$$;
comment on function pii_internal.qualified_name(regclass) is 'Internal. schema.table, each part quoted as an identifier.';

create or replace function pii_internal.column_name(tbl regclass, col smallint) returns name
language plpgsql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select a.attname from pg_catalog.pg_attribute a
    where a.attrelid = tbl and a.attnum = col and not a.attisdropped
  );
end
$$;
comment on function pii_internal.column_name(regclass, smallint) is 'Internal. Name of a live column by attnum (NULL when dropped).';

create or replace function pii_internal.column_type(tbl regclass, col smallint) returns text
language plpgsql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    select pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute a
    where a.attrelid = tbl and a.attnum = col and not a.attisdropped
  );
end
$$;
comment on function pii_internal.column_type(regclass, smallint) is 'Internal. SQL type of a column by attnum, e.g. bigint, character varying(80).';

-- The type under a column's domains (the column's own type when it is no domain): values
-- compared as it never run a domain's CHECK, which is the table owner's code.
create or replace function pii_internal.column_base_type(tbl regclass, col smallint) returns text
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive d (typ, typmod) as (
    select a.atttypid, a.atttypmod from pg_catalog.pg_attribute a
    where a.attrelid = tbl and a.attnum = col and not a.attisdropped
    union all
    select t.typbasetype, t.typtypmod from d join pg_catalog.pg_type t on t.oid = d.typ where t.typtype = 'd'
  )
  select pg_catalog.format_type(d.typ, d.typmod) from d join pg_catalog.pg_type t on t.oid = d.typ where t.typtype <> 'd'
$$;
comment on function pii_internal.column_base_type(regclass, smallint) is 'Internal. SQL type under a column''s domains, e.g. text for a column of domain email_t.';

-- Resolves a column by name, raising 42703 with the table named when it is missing.
create or replace function pii_internal.column_attnum(tbl regclass, col name) returns smallint
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  n smallint;
begin
  if col is null then
    raise exception 'column name must not be NULL (table %)', pii_internal.qualified_name(tbl) using errcode = '22004';
  end if;
  select a.attnum into n from pg_catalog.pg_attribute a
  where a.attrelid = tbl and a.attname = col and a.attnum > 0 and not a.attisdropped;
  if n is null then
    raise exception 'column "%" does not exist in table %', col, pii_internal.qualified_name(tbl)
      using errcode = '42703';
  end if;
  return n;
end
$$;
comment on function pii_internal.column_attnum(regclass, name) is 'Internal. attnum of a column by name; 42703 when it does not exist.';

-- True when some valid index has the column as its leading key: lookups by subject use it.
create or replace function pii_internal.has_leading_index(tbl regclass, col smallint) returns boolean
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select exists (
    select from pg_catalog.pg_index i
    where i.indrelid = tbl and i.indkey[0] = col and i.indpred is null
  )
$$;
comment on function pii_internal.has_leading_index(regclass, smallint) is 'Internal. Whether an index leads with the column (subject lookups need one).';

create or replace function pii_internal.is_text_type(tbl regclass, col smallint) returns boolean
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select t.typcategory = 'S'
  from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
  where a.attrelid = tbl and a.attnum = col
$$;
comment on function pii_internal.is_text_type(regclass, smallint) is 'Internal. Whether a column is of a string type (text, varchar, char, citext).';

-- Refuses tables Lethe must never touch and tables its owner cannot change.
create or replace function pii_internal.check_registrable(tbl regclass) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  nsp name;
  kind "char";
  missing text;
begin
  select n.nspname, c.relkind into nsp, kind
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace where c.oid = tbl;
  if nsp in ('pii', 'pii_internal', 'masked', 'graphile_worker', 'pg_catalog', 'information_schema') or nsp like 'pg\_toast%' then
    raise exception 'table % is in schema %, which Lethe does not register', pii_internal.qualified_name(tbl), nsp
      using errcode = '42501';
  end if;
  if kind not in ('r', 'p') then
    raise exception '% is not a table (relkind %): only ordinary and partitioned tables can be registered', pii_internal.qualified_name(tbl), kind
      using errcode = '42809';
  end if;
  if not pg_catalog.has_table_privilege(session_user, tbl, 'SELECT') then
    raise exception 'permission denied: % cannot read table %, so it cannot classify it', session_user, pii_internal.qualified_name(tbl)
      using errcode = '42501';
  end if;
  -- What Lethe will do to the table in the registering role's name: erase (UPDATE, or DELETE
  -- in mode delete and for delete tables), guard it (TRIGGER; skip guards delete). The role
  -- checked is the session's login: inside a SECURITY DEFINER function current_user is
  -- Lethe's owner, and the caller's current_user (after SET ROLE) is not visible; a session
  -- can RESET ROLE to its login's privileges anyway. (docs/security.md)
  select pg_catalog.string_agg(p, ', ') into missing
  from pg_catalog.unnest(array['UPDATE', 'DELETE', 'TRIGGER']) p
  where not pg_catalog.has_table_privilege(session_user, tbl, p);
  if missing is not null then
    raise exception 'permission denied: % lacks % on table %: registering it would let Lethe change it beyond your own privileges', session_user, missing, pii_internal.qualified_name(tbl)
      using errcode = '42501', hint = pg_catalog.format('As the table owner: grant select, update, delete, trigger on %s to %I;', pii_internal.qualified_name(tbl), session_user);
  end if;
  -- Lethe runs its statements on the table as the table's owner (pii_internal.deputy), which
  -- needs Lethe's owner to be a member of that role.
  perform pii_internal.deputy((select c.relowner::regrole from pg_catalog.pg_class c where c.oid = tbl));
  perform pii_internal.check_tree_owner(tbl);
end
$$;
comment on function pii_internal.check_registrable(regclass) is 'Internal. Refuses catalog/Lethe tables, non-tables, tables the registering login may not read, change and guard, and tables whose owner Lethe cannot act for (creates that owner''s deputy).';

---------------------------------------------------------------------------------------
-- Strategy validation (internal). Each raises a precise error naming table, column and
-- strategy, so a bad rule never reaches the registry.

-- Casts a set: literal to a column's type with the table owner's rights: a domain's CHECK
-- (or an input function) is the owner's code, never run as Lethe. Raises what the cast raises.
create or replace function pii_internal.cast_as_owner(tbl regclass, literal text, typ text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.as_owner(tbl, pg_catalog.format('select case when (%L::%s) is null then null::text[] end, null::text[]', literal, typ),
                                true, null, null);
end
$$;
comment on function pii_internal.cast_as_owner(regclass, text, text) is 'Internal. Validates a literal against a column type (domain checks included) with the table owner''s rights.';

-- Both read the strategy catalogs (47_strategies, pii_internal.check_strategy): the
-- strategy's row, the column types it fits, and its argument form.
create or replace function pii_internal.check_erase_strategy(tbl regclass, col smallint, strategy text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.check_strategy('erase', tbl, col, strategy);
end
$$;
comment on function pii_internal.check_erase_strategy(regclass, smallint, text) is 'Internal. Validates an erase strategy against the column it is for, by its row in pii_internal.erase_strategies().';

create or replace function pii_internal.check_mask_strategy(tbl regclass, col smallint, strategy text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.check_strategy('mask', tbl, col, strategy);
end
$$;
comment on function pii_internal.check_mask_strategy(regclass, smallint, text) is 'Internal. Validates a mask strategy against the column it is for, by its row in pii_internal.mask_strategies().';

---------------------------------------------------------------------------------------
-- Joins backed by foreign keys (issue 12). A registered table reaches its parent (or the
-- subject table) through one column pair; that pair must be one of a foreign key's, in
-- either direction: the table references its parent (orders.customer_id -> customers) or
-- the parent references it (customer.address_id -> address: a referenced row, which others
-- may share). docs/schemas.md.

-- The column pairs of the foreign keys between tbl and other, either direction (constraints
-- of partitions inherited from their parent's are left out: the parent's stands for them).
create or replace function pii_internal.foreign_key_pairs(tbl regclass, other regclass)
returns table (conname name, tbl_attnum smallint, other_attnum smallint, referenced boolean, columns integer)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select c.conname, k.tbl_att, k.other_att, c.conrelid <> tbl, pg_catalog.cardinality(c.conkey)
  from pg_catalog.pg_constraint c
  cross join lateral (
    select case when c.conrelid = tbl then u.a else u.b end as tbl_att, case when c.conrelid = tbl then u.b else u.a end as other_att
    from unnest(c.conkey, c.confkey) as u (a, b)
  ) k
  where c.contype = 'f' and c.conparentid = 0
    and ((c.conrelid = tbl and c.confrelid = other) or (c.conrelid = other and c.confrelid = tbl))
$$;
comment on function pii_internal.foreign_key_pairs(regclass, regclass) is 'Internal. Column pairs (tbl side, other side) of the foreign keys between two tables; referenced: other''s rows reference tbl''s.';

-- The join of tbl to parent (the subject table for a direct table): the column pair, the
-- foreign key backing it and its direction. Columns not given are taken from the one foreign
-- key that fits; several fitting are refused (42P09, naming them), none is refused (42830)
-- unless unenforced, where both columns must be given and of one type (42804).
create or replace function pii_internal.resolve_link(tbl regclass, parent regclass, tbl_column name, parent_column name,
                                                     foreign_key name, unenforced boolean, allow_referenced boolean,
                                                     out tbl_attnum smallint, out parent_attnum smallint,
                                                     out link_fk name, out link_referenced boolean)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbl_n smallint := case when tbl_column is not null then pii_internal.column_attnum(tbl, tbl_column) end;
  parent_n smallint := case when parent_column is not null then pii_internal.column_attnum(parent, parent_column) end;
  fits integer;
  candidates text;
  between_ text := pg_catalog.format('%s and %s', pii_internal.qualified_name(tbl), pii_internal.qualified_name(parent));
begin
  if foreign_key is not null and not exists (select from pii_internal.foreign_key_pairs(tbl, parent) p where p.conname = foreign_key) then
    raise exception 'foreign key "%" does not connect %', foreign_key, between_
      using errcode = '42704', hint = coalesce('Foreign keys between them: ' || (select pg_catalog.string_agg(distinct p.conname, ', ') from pii_internal.foreign_key_pairs(tbl, parent) p), 'None: add one, or pass unenforced_join => true.');
  end if;
  with fit as (
    select p.* from pii_internal.foreign_key_pairs(tbl, parent) p
    where (foreign_key is null or p.conname = foreign_key)
      and (tbl_n is null or p.tbl_attnum = tbl_n) and (parent_n is null or p.other_attnum = parent_n)
      and (allow_referenced or not p.referenced)
      -- A composite key names its pair by a column (a scope column is matched on its own).
      and (p.columns = 1 or tbl_n is not null or parent_n is not null)
  )
  select pg_catalog.count(*), pg_catalog.string_agg(pg_catalog.format('%s (%s.%I = %s.%I)', f.conname, pii_internal.qualified_name(tbl),
                                                       pii_internal.column_name(tbl, f.tbl_attnum), pii_internal.qualified_name(parent),
                                                       pii_internal.column_name(parent, f.other_attnum)), ', ' order by f.conname),
         pg_catalog.min(f.tbl_attnum), pg_catalog.min(f.other_attnum), pg_catalog.min(f.conname), pg_catalog.bool_or(f.referenced)
    into fits, candidates, tbl_attnum, parent_attnum, link_fk, link_referenced
  from fit f;
  if fits > 1 then
    raise exception 'several foreign keys join %: %', between_, candidates
      using errcode = '42P09', hint = 'Name one: foreign_key => ''<constraint>''.';
  elsif fits = 1 then
    return;
  end if;
  link_fk := null;
  link_referenced := false;
  if not coalesce(unenforced, false) then
    raise exception 'no foreign key backs the join of %.% to %.%', pii_internal.qualified_name(tbl), coalesce(tbl_column, '?'),
                    pii_internal.qualified_name(parent), coalesce(parent_column, '?')
      using errcode = '42830',
            hint = coalesce('Foreign keys between them: ' || (select pg_catalog.string_agg(distinct p.conname, ', ') from pii_internal.foreign_key_pairs(tbl, parent) p) || '.', 'None.')
                   || ' Erasure follows real foreign keys: add the constraint, or pass unenforced_join => true (pii.lint() lists it).';
  end if;
  if tbl_n is null or parent_n is null then
    raise exception 'an unenforced join of % to % needs both columns', pii_internal.qualified_name(tbl), pii_internal.qualified_name(parent)
      using errcode = '22023', hint = 'Pass the column of each table (fk_column and parent_column).';
  end if;
  if pii_internal.column_base_type(tbl, tbl_n) is distinct from pii_internal.column_base_type(parent, parent_n) then
    raise exception 'cannot join %.% (%) to %.% (%): the types differ', pii_internal.qualified_name(tbl), tbl_column, pii_internal.column_type(tbl, tbl_n),
                    pii_internal.qualified_name(parent), parent_column, pii_internal.column_type(parent, parent_n)
      using errcode = '42804';
  end if;
  tbl_attnum := tbl_n;
  parent_attnum := parent_n;
end
$$;
comment on function pii_internal.resolve_link(regclass, regclass, name, name, name, boolean, boolean) is 'Internal. The column pair, foreign key and direction of a registered table''s join to its parent; refuses ambiguous (42P09), unbacked (42830) and mistyped (42804) joins.';

create or replace function pii_internal.check_shared(tbl regclass, shared text) returns void
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if shared is null or shared not in ('keep', 'erase') then
    raise exception 'shared must be keep or erase, not "%" (table %)', shared, tbl using errcode = '22023',
      hint = 'keep (the default) leaves rows others also reference intact; erase erases them too.';
  end if;
end
$$;
comment on function pii_internal.check_shared(regclass, text) is 'Internal. Raises 22023 unless shared is keep or erase.';

revoke execute on all functions in schema pii, pii_internal from public;

---------------------------------------------------------------------------------------
-- Public registry API

create or replace function pii.register_subject_table(tbl regclass, key_column name, scope_column name default null, key_is_pii boolean default false,
                                                       kind text default null)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  key_n smallint;
  scope_n smallint;
  existing pii.subject_table;
  kind_ text;
begin
  if tbl is null then
    raise exception 'table must not be NULL' using errcode = '22004';
  end if;
  perform pii_internal.check_registrable(tbl);
  key_n := pii_internal.column_attnum(tbl, key_column);
  if scope_column is not null then
    scope_n := pii_internal.column_attnum(tbl, scope_column);
    if scope_n = key_n then
      raise exception 'scope column and key column of % must differ', pii_internal.qualified_name(tbl) using errcode = '22023';
    end if;
  end if;
  if coalesce(key_is_pii, false) and not pii_internal.is_text_type(tbl, key_n) then
    raise exception 'key_is_pii needs a text key column; %.% is %', pii_internal.qualified_name(tbl), key_column, pii_internal.column_type(tbl, key_n)
      using errcode = '42804', hint = 'A PII key (an email, a phone) is replaced by a text pseudonym on erasure.';
  end if;

  -- Several subject tables per install, one per kind (default: the table's name).
  select * into existing from pii.subject_table s where s.relid = tbl;
  kind_ := coalesce(kind, existing.kind, (select c.relname::text from pg_catalog.pg_class c where c.oid = tbl));
  if kind_ = '' or pg_catalog.length(kind_) > 63 then
    raise exception 'subject kind must be 1 to 63 characters (table %)', pii_internal.qualified_name(tbl) using errcode = '22023';
  end if;
  if existing.kind is not null and existing.kind <> kind_ then
    raise exception 'table % is already the subject table of kind "%"', pii_internal.qualified_name(tbl), existing.kind using errcode = '55000',
      hint = pg_catalog.format('Call pii.unregister_subject_table(%L) first.', existing.kind);
  end if;
  if existing.kind is null and exists (select from pii.tables t where t.relid = tbl) then
    raise exception 'table % belongs to kind "%": a subject table is already registered (%) above it', pii_internal.qualified_name(tbl),
      (select t.kind from pii.tables t where t.relid = tbl),
      (select pii_internal.qualified_name(s.relid) from pii.subject_table s join pii.tables t on t.kind = s.kind where t.relid = tbl)
      using errcode = '55000', hint = 'Unregister it (pii.unregister_table) before registering it as a subject table of its own kind.';
  end if;
  if exists (select from pii.subject_table s where s.kind = kind_ and s.relid <> tbl) then
    raise exception 'subject kind "%" is already registered with table %', kind_,
      (select pii_internal.qualified_name(s.relid) from pii.subject_table s where s.kind = kind_)
      using errcode = '55000', hint = pg_catalog.format('Pass another kind => ..., or call pii.unregister_subject_table(%L) first.', kind_);
  end if;
  if existing.kind is not null and exists (select from pii.tables t where t.kind = kind_ and t.relid <> tbl) then
    raise exception 'subject table % cannot change while other tables are registered', pii_internal.qualified_name(tbl)
      using errcode = '55000';
  end if;

  -- The first kind hashes subjects as Lethe always has; a later kind's hashes carry its
  -- name (pii_internal.kind_hash_sql), so the same key in two kinds is two subjects.
  insert into pii.subject_table (kind, relid, key_attnum, scope_attnum, key_is_pii, hash_prefix)
  values (kind_, tbl, key_n, scope_n, coalesce(key_is_pii, false),
          case when existing.kind is not null then existing.hash_prefix
               when not exists (select from pii.subject_table s where s.hash_prefix = '')
                    and not exists (select from pii_internal.tombstones tb where tb.kind is distinct from kind_) then ''
               else kind_ || pg_catalog.chr(30) end)
  on conflict on constraint subject_table_pkey do update
    set key_attnum = excluded.key_attnum, scope_attnum = excluded.scope_attnum, key_is_pii = excluded.key_is_pii;

  insert into pii.tables (relid, subject_attnum, scope_attnum, on_erase, kind)
  values (tbl, key_n, scope_n, 'anonymize', kind_)
  on conflict (relid) do update set subject_attnum = excluded.subject_attnum, scope_attnum = excluded.scope_attnum, on_erase = 'anonymize';

  if not pii_internal.has_leading_index(tbl, coalesce(scope_n, key_n)) and not pii_internal.has_leading_index(tbl, key_n) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(tbl), key_column
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(tbl), key_column);
  end if;
  perform pii_internal.write_audit('register_subject_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'key_is_pii', coalesce(key_is_pii, false), 'scoped', scope_n is not null, 'kind', kind_));
end
$$;
comment on function pii.register_subject_table(regclass, name, name, boolean, text) is
$$Registers a table whose rows are data subjects of a kind (kind defaults to the table's name; an install may have
several kinds: customer, staff). Its record is kept on erasure (anonymize). Tables registered through it belong to
its kind. scope_column makes a subject (scope, key), for brands whose keys overlap. key_is_pii replaces the key with
a pseudonym everywhere it is referenced on erasure (referencing foreign keys must be ON UPDATE CASCADE).
Example: select pii.register_subject_table('crm.customers', 'id', kind => 'customer');$$;

create or replace function pii.register_table(tbl regclass, subject_column name, on_erase text, scope_column name default null,
                                              foreign_key name default null, unenforced_join boolean default false)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  col_n smallint;
  scope_n smallint;
  fk record;
  link record;
begin
  if tbl is null then
    raise exception 'table must not be NULL' using errcode = '22004';
  end if;
  -- The kind: the subject table subject_column's foreign key references, else the only kind.
  select s.* into subj from pii.subject_table s
  join pg_catalog.pg_constraint c on c.confrelid = s.relid and c.conrelid = tbl and c.contype = 'f'
  join pg_catalog.pg_attribute a on a.attrelid = tbl and a.attname = subject_column and c.conkey = array[a.attnum]
  limit 1;
  if subj.relid is null and not exists (select from pii.subject_table) then
    raise exception 'no subject table is registered yet' using errcode = '55000',
      hint = 'Call pii.register_subject_table(...) first.';
  end if;
  if exists (select from pii.subject_table s where s.relid = tbl) then
    select * into subj from pii.subject_table s where s.relid = tbl;
  elsif subj.relid is null and (select pg_catalog.count(*) from pii.subject_table) > 1 then
    raise exception 'which subject kind does % belong to? no foreign key from %.% to a subject table (kinds %)',
      pii_internal.qualified_name(tbl), pii_internal.qualified_name(tbl), subject_column, pii_internal.kind_list()
      using errcode = '22023', hint = 'Add the foreign key to the subject table of its kind, or register the table under a registered parent (pii.register_child_table).';
  elsif subj.relid is null then
    select * into subj from pii.subject_table;
  end if;
  if tbl = subj.relid then
    raise exception 'table % is the subject table; it is registered already', pii_internal.qualified_name(tbl) using errcode = '55000';
  end if;
  perform pii_internal.check_registrable(tbl);
  if on_erase is null or on_erase not in ('anonymize', 'delete') then
    raise exception 'on_erase must be anonymize or delete, not "%" (table %)', on_erase, pii_internal.qualified_name(tbl) using errcode = '22023';
  end if;
  col_n := pii_internal.column_attnum(tbl, subject_column);

  if subj.scope_attnum is null then
    if scope_column is not null then
      raise exception 'scope_column given for % but the subject table % is not scoped', pii_internal.qualified_name(tbl), pii_internal.qualified_name(subj.relid)
        using errcode = '22023';
    end if;
  else
    scope_n := pii_internal.column_attnum(tbl, coalesce(scope_column, pii_internal.column_name(subj.relid, subj.scope_attnum)));
  end if;
  -- The table references the subject table: a foreign key from subject_column to its key.
  link := pii_internal.resolve_link(tbl, subj.relid, subject_column, pii_internal.column_name(subj.relid, subj.key_attnum),
                                    foreign_key, unenforced_join, false);

  if subj.key_is_pii then
    -- The key is rewritten to a pseudonym in the subject table; a foreign key that
    -- does not cascade that update would make every erasure fail.
    for fk in
      select c.conname, c.confupdtype from pg_catalog.pg_constraint c
      where c.conrelid = tbl and c.contype = 'f' and c.confrelid = subj.relid and c.conkey = array[col_n]
    loop
      if fk.confupdtype <> 'c' then
        raise exception 'foreign key % on % must be ON UPDATE CASCADE: the subject key is PII and is replaced by a pseudonym on erasure', fk.conname, pii_internal.qualified_name(tbl)
          using errcode = '55000';
      end if;
    end loop;
  end if;

  insert into pii.tables (relid, subject_attnum, scope_attnum, on_erase, link_fk, link_referenced, unenforced_join)
  values (tbl, col_n, scope_n, on_erase, link.link_fk, false, link.link_fk is null)
  on conflict (relid) do update
    set subject_attnum = excluded.subject_attnum, scope_attnum = excluded.scope_attnum, on_erase = excluded.on_erase,
        parent_relid = null, parent_fk_attnum = null, parent_key_attnum = null,
        link_fk = excluded.link_fk, link_referenced = false, unenforced_join = excluded.unenforced_join;
  perform pii_internal.refuse_unrunnable_plan(tbl);

  if not pii_internal.has_leading_index(tbl, col_n) and (scope_n is null or not pii_internal.has_leading_index(tbl, scope_n)) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(tbl), subject_column
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(tbl), subject_column);
  end if;
  perform pii_internal.write_audit('register_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'on_erase', on_erase,
    'foreign_key', link.link_fk, 'unenforced_join', link.link_fk is null));
end
$$;
comment on function pii.register_table(regclass, name, text, name, name, boolean) is
$$Registers a table whose rows belong to a subject through subject_column. on_erase: anonymize (keep the row,
apply column strategies) or delete (remove the rows: behavioural history). In a scoped install scope_column
defaults to the subject table's scope column name. Warns when subject_column has no index.
The join must be a foreign key from subject_column to the subject table's key (foreign_key names it when several
fit); a join no foreign key backs is refused (42830) unless unenforced_join => true (pii.lint() lists it). A
registration whose erasure plan would violate a constraint is refused (55000, naming the constraint).
Example: select pii.register_table('crm.orders', 'customer_id', 'anonymize');$$;

create or replace function pii.register_child_table(tbl regclass, parent regclass, fk_column name default null, on_erase text default 'delete',
                                                    parent_column name default null, foreign_key name default null,
                                                    unenforced_join boolean default false, shared text default 'keep')
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  link record;
  ancestor regclass;
begin
  if tbl is null or parent is null then
    raise exception 'table and parent must not be NULL' using errcode = '22004';
  end if;
  perform pii_internal.check_registrable(tbl);
  if not exists (select from pii.tables t where t.relid = parent) then
    raise exception 'no path from % to the subject: parent % is not registered', pii_internal.qualified_name(tbl), pii_internal.qualified_name(parent)
      using errcode = '55000', hint = 'Register the parent first with pii.register_table or pii.register_child_table.';
  end if;
  if exists (select from pii.subject_table s where s.relid = tbl) then
    raise exception 'table % is the subject table', pii_internal.qualified_name(tbl) using errcode = '55000';
  end if;
  -- A table cannot be its own ancestor.
  ancestor := parent;
  while ancestor is not null loop
    if ancestor = tbl then
      raise exception 'registering % under % would make a cycle', pii_internal.qualified_name(tbl), pii_internal.qualified_name(parent) using errcode = '55000';
    end if;
    -- Erasure and guards join the table to its ancestors with its owner's rights.
    if not pg_catalog.has_table_privilege((select c.relowner from pg_catalog.pg_class c where c.oid = tbl), ancestor, 'SELECT') then
      raise exception 'the owner of % cannot read %: Lethe reaches its rows through that table with its owner''s rights', pii_internal.qualified_name(tbl), pii_internal.qualified_name(ancestor)
        using errcode = '42501', hint = pg_catalog.format('grant select on %s to %I;', pii_internal.qualified_name(ancestor),
                                                          (select c.relowner::regrole::text from pg_catalog.pg_class c where c.oid = tbl));
    end if;
    select t.parent_relid into ancestor from pii.tables t where t.relid = ancestor;
  end loop;
  if on_erase is null or on_erase not in ('anonymize', 'delete') then
    raise exception 'on_erase must be anonymize or delete, not "%" (table %)', on_erase, pii_internal.qualified_name(tbl) using errcode = '22023';
  end if;
  perform pii_internal.check_shared(tbl, shared);
  -- Rows reached through a referenced row (customer -> address) are found through a key
  -- captured before erasure starts; nothing can hang below them yet.
  if exists (select from pii.tables t where t.relid = parent and t.link_referenced) then
    raise exception 'cannot register % under %: % is registered as a table its parent references, and tables below such a table are not supported',
                    pii_internal.qualified_name(tbl), pii_internal.qualified_name(parent), pii_internal.qualified_name(parent)
      using errcode = '0A000', hint = pg_catalog.format(
        'Rows below a row others may share belong to its owners, whom Lethe finds for %s only. Register %s by its own foreign key to a registered table that references the subject (pii.register_table, pii.register_child_table), if it has one. Otherwise it stays unregistered: erasure leaves its rows, and the rows of %s they reference count as shared (kept).',
        pii_internal.qualified_name(parent), pii_internal.qualified_name(tbl), pii_internal.qualified_name(parent));
  end if;
  -- The join is one of a foreign key's column pairs, in either direction (a column not given
  -- is the one the foreign key has); never a guessed column.
  link := pii_internal.resolve_link(tbl, parent, fk_column, parent_column, foreign_key, unenforced_join, true);

  insert into pii.tables (relid, parent_relid, parent_fk_attnum, parent_key_attnum, on_erase, link_fk, link_referenced, unenforced_join, shared)
  values (tbl, parent, link.tbl_attnum, link.parent_attnum, on_erase, link.link_fk, link.link_referenced, link.link_fk is null, shared)
  on conflict (relid) do update
    set subject_attnum = null, scope_attnum = null, parent_relid = excluded.parent_relid,
        parent_fk_attnum = excluded.parent_fk_attnum, parent_key_attnum = excluded.parent_key_attnum, on_erase = excluded.on_erase,
        link_fk = excluded.link_fk, link_referenced = excluded.link_referenced, unenforced_join = excluded.unenforced_join,
        shared = excluded.shared;
  perform pii_internal.refuse_unrunnable_plan(tbl);

  -- The lookup erasure and guards make: the referencing column (on the parent when it
  -- references this table, whose own column is its key).
  if link.link_referenced and not pii_internal.has_leading_index(parent, link.parent_attnum) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(parent), pii_internal.column_name(parent, link.parent_attnum)
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(parent), pii_internal.column_name(parent, link.parent_attnum));
  elsif not pii_internal.has_leading_index(tbl, link.tbl_attnum) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(tbl), pii_internal.column_name(tbl, link.tbl_attnum)
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(tbl), pii_internal.column_name(tbl, link.tbl_attnum));
  end if;
  perform pii_internal.write_audit('register_child_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'parent', pii_internal.qualified_name(parent), 'on_erase', on_erase,
    'foreign_key', link.link_fk, 'unenforced_join', link.link_fk is null, 'referenced', link.link_referenced, 'shared', shared));
end
$$;
comment on function pii.register_child_table(regclass, regclass, name, text, name, name, boolean, text) is
$$Registers a table that reaches the subject only through a registered parent, by a foreign key in either direction:
it references the parent (order_items -> orders -> customers, any depth; its rows follow the parent's: deleted when
they are) or the parent references it (customer.address_id -> address: a referenced row, which staff, stores or other
customers may share). The join is taken from the foreign key: fk_column (this table's column) and parent_column
narrow it, foreign_key names it; several fitting are refused (42P09), none (42830) unless unenforced_join => true
(both columns given, one type; pii.lint() lists it). shared: keep (default) leaves rows that other rows also
reference intact, erase erases them too. A plan that would violate a constraint is refused (55000).
Examples: select pii.register_child_table('crm.order_items', 'crm.orders', 'order_id', 'anonymize');
select pii.register_child_table('shop.address', 'shop.customer', on_erase => 'anonymize');$$;

-- The registry row of a table a column-level call names: 22004 for NULL, 55000 when the
-- table is not registered (column rules and identifiers need their table first).
create or replace function pii_internal.registered_table(tbl regclass) returns pii.tables
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
begin
  if tbl is null then
    raise exception 'table must not be NULL' using errcode = '22004';
  end if;
  select * into reg from pii.tables t where t.relid = tbl;
  if reg.relid is null then
    raise exception 'table % is not registered', pii_internal.qualified_name(tbl)
      using errcode = '55000', hint = 'Register the table first (pii.register_table, register_child_table or register_subject_table).';
  end if;
  return reg;
end
$$;
comment on function pii_internal.registered_table(regclass) is 'Internal. The pii.tables row of a registered table (22004 for NULL, 55000 naming the table when it is not registered).';

create or replace function pii.register_column(tbl regclass, col name, erase text, mask text default 'hide', category text default 'pii')
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  n smallint;
begin
  reg := pii_internal.registered_table(tbl);
  perform pii_internal.check_registrable(tbl);
  n := pii_internal.column_attnum(tbl, col);
  if category is null or pg_catalog.btrim(category) = '' then
    raise exception 'category must not be empty (column %.%)', pii_internal.qualified_name(tbl), col using errcode = '22023';
  end if;
  if n in (reg.subject_attnum, reg.scope_attnum, reg.parent_fk_attnum) and erase <> 'keep' then
    raise exception 'column %.% links rows to their subject; its erase strategy must be keep', pii_internal.qualified_name(tbl), col
      using errcode = '22023', hint = 'A key that is itself PII is handled by register_subject_table(..., key_is_pii => true).';
  end if;
  perform pii_internal.check_erase_strategy(tbl, n, erase);
  perform pii_internal.check_mask_strategy(tbl, n, coalesce(mask, 'hide'));

  insert into pii.columns (relid, attnum, erase, mask, category)
  values (tbl, n, erase, coalesce(mask, 'hide'), category)
  on conflict (relid, attnum) do update set erase = excluded.erase, mask = excluded.mask, category = excluded.category;
  perform pii_internal.write_audit('register_column', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'column', col, 'erase', erase, 'mask', coalesce(mask, 'hide'), 'category', category));
end
$$;
comment on function pii.register_column(regclass, name, text, text, text) is
$$Registers a PII column of a registered table.
erase: null | set:<literal> (set:DEACTIVATED, set:true) | pseudonym (keyed HMAC, joinable) | jsonb_remove:<key>[,<key>…] | keep.
mask (masked views): hide | email | partial:<first>,<last> | hash | year | set:<literal> | clear.
Example: select pii.register_column('crm.customers', 'email', 'null', mask => 'email', category => 'contact');$$;

create or replace function pii.unregister_column(tbl regclass, col name) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  n smallint := pii_internal.column_attnum(tbl, col);
  found_ boolean;
begin
  delete from pii.columns c where c.relid = tbl and c.attnum = n;
  found_ := found;
  if found_ then
    perform pii_internal.write_audit('unregister_column', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'column', col));
  end if;
  return found_;
end
$$;
comment on function pii.unregister_column(regclass, name) is 'Removes a column''s rule; returns false when it had none. Example: select pii.unregister_column(''crm.customers'', ''city'');';

create or replace function pii.unregister_table(tbl regclass) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if exists (select from pii.subject_table s where s.relid = tbl) then
    raise exception 'table % is the subject table', pii_internal.qualified_name(tbl) using errcode = '55000',
      hint = 'Use pii.unregister_subject_table().';
  end if;
  if exists (select from pii.tables t where t.parent_relid = tbl) then
    raise exception 'table % has registered child tables; unregister them first', pii_internal.qualified_name(tbl) using errcode = '2BP01';
  end if;
  delete from pii.tables t where t.relid = tbl;
  if not found then
    return false;
  end if;
  perform pii_internal.write_audit('unregister_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl)));
  return true;
end
$$;
comment on function pii.unregister_table(regclass) is 'Removes a table and its column rules from the registry; returns false when it was not registered. Example: select pii.unregister_table(''crm.events'');';

create or replace function pii.unregister_subject_table(kind text default null) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
begin
  if not exists (select from pii.subject_table) then
    return false;
  end if;
  if kind is not null and not exists (select from pii.subject_table s where s.kind = unregister_subject_table.kind) then
    return false;
  end if;
  subj := pii_internal.subject_kind(kind);
  if exists (select from pii.tables t where t.kind = subj.kind and t.relid <> subj.relid) then
    raise exception 'other tables are registered; unregister them first' using errcode = '2BP01';
  end if;
  delete from pii.tables t where t.relid = subj.relid;
  delete from pii.subject_table s where s.kind = subj.kind;
  perform pii_internal.write_audit('unregister_subject_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(subj.relid), 'kind', subj.kind));
  return true;
end
$$;
comment on function pii.unregister_subject_table(text) is 'Removes a kind''s subject table registration (only when no other table of the kind is registered; kind may be omitted when the install has one). Example: select pii.unregister_subject_table(''staff'');';

---------------------------------------------------------------------------------------
-- Views over the registry (names, not attnums)

create or replace view pii.registered_tables with (security_barrier) as
select
  pii_internal.qualified_name(t.relid) as table_name,
  case when s.relid is not null then 'subject' when t.parent_relid is null then 'direct' when t.link_referenced then 'referenced by parent' else 'via parent' end as link,
  pii_internal.column_name(t.relid, t.subject_attnum) as subject_column,
  pii_internal.qualified_name(t.parent_relid) as parent_table,
  pii_internal.column_name(t.relid, t.parent_fk_attnum) as parent_fk_column,
  pii_internal.column_name(t.parent_relid, t.parent_key_attnum) as parent_key_column,
  pii_internal.column_name(t.relid, t.scope_attnum) as scope_column,
  t.on_erase,
  t.guard_mode,
  coalesce(s.key_is_pii, false) as key_is_pii,
  case when t.link_referenced then pii_internal.has_leading_index(t.parent_relid, t.parent_key_attnum)
       else pii_internal.has_leading_index(t.relid, coalesce(t.subject_attnum, t.parent_fk_attnum)) end as has_index,
  (select pg_catalog.count(*) from pii.columns c where c.relid = t.relid and c.category <> 'not_pii') as pii_columns,
  t.registered_at,
  t.link_fk as foreign_key,
  t.unenforced_join,
  t.shared,
  t.kind
from pii.tables t
left join pii.subject_table s on s.relid = t.relid;
comment on view pii.registered_tables is 'Registered tables and the subject kind each belongs to: how each reaches the subject (the foreign key backing the join, or unenforced_join), what erasure does to its rows and to rows others share, whether the subject lookup is indexed.';

create or replace view pii.registered_columns with (security_barrier) as
select
  pii_internal.qualified_name(c.relid) as table_name,
  pii_internal.column_name(c.relid, c.attnum) as column_name,
  pii_internal.column_type(c.relid, c.attnum) as data_type,
  c.erase,
  c.mask,
  c.category,
  c.registered_at
from pii.columns c;
comment on view pii.registered_columns is 'Registered PII columns with their erase and mask strategies and category.';

revoke all on pii.registered_tables, pii.registered_columns from public;
grant select on pii.registered_tables, pii.registered_columns to pii_admin, pii_operator, pii_auditor;

-- The registered table whose guard covers rel: rel itself, or its nearest registered
-- ancestor through partitions and inheritance children alike (pg_inherits holds both).
create or replace function pii_internal.registered_ancestor(rel regclass) returns regclass
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    with recursive up (relid, depth) as (
      select rel::oid, 0
      union all
      select i.inhparent, up.depth + 1 from pg_catalog.pg_inherits i join up on i.inhrelid = up.relid
    )
    select t.relid from up join pii.tables t on t.relid::oid = up.relid order by up.depth limit 1
  );
end
$$;
comment on function pii_internal.registered_ancestor(regclass) is 'Internal. The registered table whose guard covers a table: itself, or its nearest registered ancestor (partitions and inheritance children).';

-- The tables a registered table's guards go on: itself and every partition and
-- inheritance child at any depth (a statement naming a child fires only the child's
-- triggers), except children registered themselves (they have their own guards).
create or replace function pii_internal.guarded_tree(tbl regclass) returns setof regclass
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query
    with recursive down (relid) as (
      select tbl::oid
      union
      select i.inhrelid from pg_catalog.pg_inherits i join down on i.inhparent = down.relid
      where not exists (select from pii.tables t where t.relid::oid = i.inhrelid)
    )
    select down.relid::regclass from down;
end
$$;
comment on function pii_internal.guarded_tree(regclass) is 'Internal. A registered table and its partitions and inheritance children (any depth): where its guards go.';

-- Tables whose guards are missing or not ENABLE ALWAYS: a dropped or disabled guard
-- lets erased people back in unnoticed (replica mode skips triggers that are not ALWAYS).
-- Also: without event triggers, partitions and children attached later are unchecked.
create or replace function pii_internal.guard_problems()
returns table (table_name text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.qualified_name(d.rel),
         pg_catalog.format('guard trigger %s is %s: rows of erased subjects written to this table%s are not checked',
                           e.name,
                           case when g.tgenabled is null then 'missing' when g.tgenabled = 'D' then 'disabled'
                                when g.tgenabled = 'R' then 'enabled for replica only' else 'not ENABLE ALWAYS (skipped under session_replication_role = replica)' end,
                           case when d.rel <> t.relid then pg_catalog.format(' (part of %s)', pii_internal.qualified_name(t.relid)) else '' end),
         pg_catalog.format('select pii.sync_guards(%L);', pii_internal.qualified_name(t.relid))
  from pii.tables t
  cross join lateral pii_internal.guarded_tree(t.relid) d (rel)
  cross join (values ('lethe_guard_insert', 4), ('lethe_guard_update', 16)) as e (name, event_bit)
  left join pg_catalog.pg_trigger g
    on g.tgrelid = d.rel and g.tgname = e.name
   and g.tgfoid in (select p.oid from pg_catalog.pg_proc p where p.proname = 'guard_rows' and p.pronamespace = 'pii_internal'::regnamespace)
   and (g.tgtype::integer & e.event_bit) <> 0
  where t.guard_mode <> 'off' and exists (select from pg_catalog.pg_class c where c.oid = t.relid)
    and g.tgenabled is distinct from 'A'
  union all
  select null, 'Lethe''s event trigger lethe_guard_partitions is not installed (no superuser at install): partitions and inheritance children attached to registered tables are neither checked nor guarded',
         'After ATTACH PARTITION, CREATE TABLE … PARTITION OF / INHERITS: select pii.sync_guards(''<registered table>''); and check the rows they brought'
  where exists (select from pii.tables t where t.guard_mode <> 'off')
    and not exists (select from pg_catalog.pg_event_trigger e where e.evtname = 'lethe_guard_partitions' and e.evtenabled <> 'D')
$$;
comment on function pii_internal.guard_problems() is 'Internal. Missing, disabled or not-ALWAYS guard triggers on registered tables and their partitions and children; missing guard event trigger.';

---------------------------------------------------------------------------------------
-- Plans that cannot run (issue 12): found at registration and by lint, not at erase time.

-- The order erasure statements follow, as edges referencing -> referenced between live
-- registered tables: every foreign key between two of them (the partitioned parent's
-- constraint for its partitions), and every registered join (its foreign key, or none for
-- an unenforced join), each with its constraint's name and whether it is a registered join.
-- An edge whose referenced table reaches the referencing one again is part of a cycle:
-- cycle names the cycle (its strongly connected component) by the first of its tables'
-- names. The registered joins alone form a tree, so they never make a cycle on their own.
create or replace function pii_internal.plan_edges()
returns table (src oid, dst oid, conname name, registered_join boolean, cycle text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive live as (
    select t.* from pii.tables t where exists (select from pg_catalog.pg_class c where c.oid = t.relid)
  ), edges as (
    select x.src, x.dst, x.conname, pg_catalog.bool_or(x.registered_join) as registered_join
    from (select c.conrelid as src, c.confrelid as dst, c.conname, false as registered_join from pg_catalog.pg_constraint c
          where c.contype = 'f' and c.conparentid = 0 and c.conrelid <> c.confrelid
            and c.conrelid in (select l.relid::oid from live l) and c.confrelid in (select l.relid::oid from live l)
          union all
          select case when t.link_referenced then t.parent_relid::oid else t.relid::oid end,
                 case when t.link_referenced then t.relid::oid else coalesce(t.parent_relid, s.relid)::oid end,
                 t.link_fk, true
          from live t join pii.subject_table s on s.kind = t.kind
          where t.relid <> s.relid) x
    group by x.src, x.dst, x.conname
  ), reach (a, b) as (
    -- A cycle needs a foreign key that is no registered join: without one, nothing to walk.
    select e.src, e.dst from edges e where exists (select from edges n where not n.registered_join)
    union
    select r.a, e.dst from reach r join edges e on e.src = r.b
  )
  select e.src, e.dst, e.conname, e.registered_join,
         case when exists (select from reach r where r.a = e.dst and r.b = e.src) then
           (select pg_catalog.min(pii_internal.qualified_name(r.b::regclass)) from reach r
            where r.a = e.src and exists (select from reach q where q.a = r.b and q.b = e.src)) end
  from edges e
$$;
comment on function pii_internal.plan_edges() is 'Internal. Referencing -> referenced edges between registered tables (foreign keys and registered joins, with the constraint name); cycle: the first table name of the cycle the edge is part of, NULL when none.';

-- Every foreign key into a table registered as referenced by its parent: erasure looks for
-- rows referencing a row through each of them (a row someone else references is shared).
create or replace function pii_internal.shared_row_references()
returns table (referenced regclass, referencing regclass, conname name, conkey smallint[], confkey smallint[], columns text, indexed boolean)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select t.relid, c.conrelid::regclass, c.conname, c.conkey, c.confkey,
         (select pg_catalog.string_agg(pg_catalog.quote_ident(pii_internal.column_name(c.conrelid, k.a)), ', ' order by k.i)
          from unnest(c.conkey) with ordinality as k (a, i)),
         pii_internal.has_leading_index(c.conrelid, c.conkey[1])
  from pii.tables t
  join pg_catalog.pg_constraint c on c.contype = 'f' and c.conparentid = 0 and c.confrelid = t.relid::oid
  where t.link_referenced and exists (select from pg_catalog.pg_class x where x.oid = t.relid)
$$;
comment on function pii_internal.shared_row_references() is 'Internal. The foreign keys into tables registered as referenced by their parent (whose rows may be shared), with their columns and whether an index leads with them.';

-- Registrations whose erasure plan in mode (erase or delete) would violate a constraint:
-- deleting rows that a row erasure leaves in place still references (a foreign key without
-- ON DELETE CASCADE / SET NULL, partitioned tables' included), or an ON DELETE SET NULL onto
-- a NOT NULL column. Rows of a referenced table that others reference are shared: with
-- shared => keep they are kept, so those references are no problem.
create or replace function pii_internal.plan_problems(mode text)
returns table (table_name text, constraint_name name, problem text, hint text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query
  with reg as (
    select t.relid, t.link_referenced, t.shared,
           case when mode = 'delete' then 'delete' else pii_internal.erase_action(t.relid) end as action
    from pii.tables t where exists (select from pg_catalog.pg_class x where x.oid = t.relid)
  ),
  refs as (
    select r.relid, r.link_referenced, r.shared, c.conname, c.conrelid::regclass as y, c.confdeltype, c.conkey,
           y.relid is not null as y_registered, y.action as y_action,
           -- Each referencing column is moved off the row by its erase strategy (null, set:).
           y.relid is not null and not exists (
             select from unnest(c.conkey) k (a)
             where not exists (select from pii.columns pc where pc.relid = y.relid and pc.attnum = k.a
                                 and (pii_internal.parse_strategy(pc.erase)).name in ('null', 'set'))) as y_moves_off,
           exists (select from pg_catalog.pg_attribute a where a.attrelid = c.conrelid and a.attnum = any (c.conkey) and a.attnotnull) as y_not_null
    from reg r
    join pg_catalog.pg_constraint c on c.contype = 'f' and c.conparentid = 0 and c.confrelid = r.relid::oid and c.conrelid <> r.relid::oid
    left join reg y on y.relid::oid = c.conrelid
    where r.action = 'delete'
  )
  select pii_internal.qualified_name(f.relid), f.conname,
         case when f.confdeltype = 'n'
              then pg_catalog.format('deleting rows of %s sets %s.(%s) to NULL (foreign key %s, ON DELETE SET NULL), which is NOT NULL',
                                     pii_internal.qualified_name(f.relid), pii_internal.qualified_name(f.y), pii_internal.fk_columns(f.y, f.conkey), f.conname)
              else pg_catalog.format('deleting rows of %s violates foreign key %s: %s rows %s still reference them',
                                     pii_internal.qualified_name(f.relid), f.conname, pii_internal.qualified_name(f.y),
                                     case when f.y_registered then 'that erasure keeps' else 'of this unregistered table' end) end,
         case when f.confdeltype = 'n'
              then pg_catalog.format('Make %s.(%s) nullable, or register %s with on_erase => anonymize.', pii_internal.qualified_name(f.y),
                                     pii_internal.fk_columns(f.y, f.conkey), pii_internal.qualified_name(f.relid))
              else pg_catalog.format('Register %s with on_erase => delete%s, or alter %s to ON DELETE CASCADE / SET NULL, or %s%s.',
                                     pii_internal.qualified_name(f.y),
                                     case when f.y_registered then pg_catalog.format(', or give %s.(%s) the erase strategy null or set:<placeholder id>',
                                                                                    pii_internal.qualified_name(f.y), pii_internal.fk_columns(f.y, f.conkey)) else '' end,
                                     f.conname,
                                     case when mode = 'delete' then 'erase with mode => erase'
                                          else pg_catalog.format('register %s with on_erase => anonymize', pii_internal.qualified_name(f.relid)) end,
                                     case when f.link_referenced then ' (with shared => keep, rows other tables reference are kept)' else '' end) end
  from refs f
  where case when f.confdeltype = 'n' then f.y_not_null
             when f.confdeltype in ('a', 'r') then not (
               f.y_action is not distinct from 'delete' or f.y_moves_off
               -- Rows an unregistered table references are shared, and kept.
               or (f.link_referenced and f.shared = 'keep' and not f.y_registered))
             else false end
  order by 1, 2;
  if not exists (select from pii_internal.plan_edges() e where e.cycle is not null and not e.registered_join) then
    return;
  end if;
  return query
  -- In a cycle of foreign keys, a table changed after a table it references is deleted (the
  -- plan's order follows the registered joins): its rows still reference the deleted ones,
  -- whatever its own erase strategies do to them later.
  with plan as materialized (
    select p.relid::oid as relid, p.action, p.ord
    from pii_internal.erase_plan(mode) with ordinality as p (relid, table_name, action, depth, statement, capture, ord)
  )
  select pii_internal.qualified_name(e.dst::regclass), e.conname,
         pg_catalog.format('deleting rows of %s violates foreign key %s: %s rows, erased after them, still reference them (foreign keys between registered tables form a cycle: %s; the plan follows the registered joins)',
                           pii_internal.qualified_name(e.dst::regclass), e.conname, pii_internal.qualified_name(e.src::regclass),
                           (select pg_catalog.string_agg(pg_catalog.format('%s (%s -> %s)', coalesce(x.conname::text, 'unenforced join'),
                                                                           pii_internal.qualified_name(x.src::regclass), pii_internal.qualified_name(x.dst::regclass)),
                                                         ', ' order by x.conname, x.src)
                            from pii_internal.plan_edges() x where x.cycle operator(pg_catalog.=) e.cycle)),
         pg_catalog.format('Alter %s to ON DELETE CASCADE / SET NULL or DEFERRABLE INITIALLY DEFERRED, or %s.', e.conname,
                           case when mode = 'delete' then 'erase with mode => erase'
                                else pg_catalog.format('register %s with on_erase => anonymize', pii_internal.qualified_name(e.dst::regclass)) end)
  from pii_internal.plan_edges() e
  join pg_catalog.pg_constraint c on c.conrelid = e.src and c.conname = e.conname and c.contype = 'f'
  join plan ps on ps.relid = e.src
  join plan pd on pd.relid = e.dst
  where e.cycle is not null and not e.registered_join and c.confdeltype in ('a', 'r') and not c.condeferred
    and pd.action = 'delete' and ps.ord > pd.ord
  order by 1, 2;
end
$$;
comment on function pii_internal.plan_problems(text) is 'Internal. Registrations whose erasure plan (mode erase or delete) would violate a constraint: the table, the constraint, the problem and the fix.';

create or replace function pii_internal.fk_columns(tbl regclass, cols smallint[]) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.string_agg(pg_catalog.quote_ident(pii_internal.column_name(tbl, k.a)), ', ' order by k.i) from unnest(cols) with ordinality as k (a, i)
$$;
comment on function pii_internal.fk_columns(regclass, smallint[]) is 'Internal. Column names of a foreign key, comma-separated and quoted.';

-- Registration refuses a table whose own plan (mode erase) cannot run because of a table
-- registered already (a kept table referencing the rows it deletes). A table not registered
-- yet may be registered next (a child below the table just registered, which follows its
-- deletes): a WARNING names it, lint lists it as an error and erasure refuses to run until
-- it is fixed. Plans only mode delete cannot run are warned about. Raised inside the
-- registering statement: nothing is written.
create or replace function pii_internal.refuse_unrunnable_plan(tbl regclass) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  p record;
begin
  for p in
    select x.*, exists (select from pii.tables r where r.relid::oid = c.conrelid) as by_registered, 'erase' as mode
    from pii_internal.plan_problems('erase') x
    join pg_catalog.pg_constraint c on c.conname = x.constraint_name and c.confrelid = tbl::oid and c.contype = 'f'
    where x.table_name = pii_internal.qualified_name(tbl)
    union all
    select x.*, false, 'delete'
    from pii_internal.plan_problems('delete') x
    where x.table_name = pii_internal.qualified_name(tbl)
      and not exists (select from pii_internal.plan_problems('erase') e where e.table_name = x.table_name and e.constraint_name = x.constraint_name)
    order by 5 desc, 6
  loop
    if p.by_registered then
      raise exception 'erasure could not run: %', p.problem using errcode = '55000', hint = p.hint, constraint = p.constraint_name;
    elsif p.mode = 'erase' then
      raise warning 'erasure cannot run until this is fixed: %', p.problem using hint = p.hint;
    else
      raise warning 'erasure with mode => delete could not run: %', p.problem using hint = p.hint;
    end if;
  end loop;
end
$$;
comment on function pii_internal.refuse_unrunnable_plan(regclass) is 'Internal. Raises 55000 (naming the constraint) when a registered table''s erasure plan would violate a constraint because of a registered table; warns of unregistered referencing tables and of plans only mode delete cannot run.';

-- Registry problems, for humans and for `lethe lint`.
create or replace function pii.lint()
returns table (severity text, table_name text, column_name text, problem text, hint text)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  with live as (
    select t.* from pii.tables t where exists (select from pg_catalog.pg_class c where c.oid = t.relid)
  )
  select 'error', t.relid::oid::text, null, 'a registered table no longer exists (dropped): erasure skips it and its child tables',
         pg_catalog.format('select pii.unregister_table(%s::oid::regclass)', t.relid::oid)
  from pii.tables t
  where not exists (select from live l where l.relid = t.relid)
  union all
  select 'warning', pii_internal.qualified_name(t.relid), pii_internal.column_name(t.relid, coalesce(t.subject_attnum, t.parent_fk_attnum)),
         'no index leads with the subject column: erasure and guards scan the table',
         pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(t.relid), pii_internal.column_name(t.relid, coalesce(t.subject_attnum, t.parent_fk_attnum)))
  from live t
  where not pii_internal.has_leading_index(t.relid, coalesce(t.subject_attnum, t.parent_fk_attnum))
    and not (t.scope_attnum is not null and pii_internal.has_leading_index(t.relid, t.scope_attnum))
  union all
  select 'error', pii_internal.qualified_name(c.relid), null, 'a registered column was dropped (attnum ' || c.attnum || ')',
         'select pii.apply_masking(); or re-register the column'
  from pii.columns c join live t on t.relid = c.relid
  where pii_internal.column_name(c.relid, c.attnum) is null
  union all
  select 'notice', pii_internal.qualified_name(t.relid), null, 'anonymize table with nothing to erase: erasure leaves its rows unchanged',
         'register its PII columns with pii.register_column, or make it on_erase => delete'
  from live t
  where t.on_erase = 'anonymize'
    and not exists (select from pii.columns c where c.relid = t.relid and c.erase <> 'keep')
    and not exists (select from pii.subject_table s where s.relid = t.relid and s.key_is_pii)
  union all
  select 'error', pii_internal.qualified_name(t.relid), null, 'Lethe''s owner role lacks SELECT, UPDATE, DELETE or TRIGGER on this table',
         pg_catalog.format('grant select, update, delete, trigger on %s to %I', pii_internal.qualified_name(t.relid), current_user)
  from live t
  where not (pg_catalog.has_table_privilege(current_user, t.relid, 'SELECT') and pg_catalog.has_table_privilege(current_user, t.relid, 'UPDATE')
             and pg_catalog.has_table_privilege(current_user, t.relid, 'DELETE') and pg_catalog.has_table_privilege(current_user, t.relid, 'TRIGGER'))
  union all
  select 'error', pii_internal.qualified_name(t.relid), null,
         'Lethe''s owner role is not a member of the table''s owner: erasure and guards cannot run with the owner''s rights',
         pg_catalog.format('grant %I to %I;', c.relowner::regrole, current_user)
  from live t join pg_catalog.pg_class c on c.oid = t.relid
  where not pg_catalog.pg_has_role(current_user, c.relowner, 'MEMBER')
  union all
  select 'warning', pii_internal.qualified_name(t.relid), pii_internal.column_name(t.relid, coalesce(t.subject_attnum, t.parent_fk_attnum)),
         pg_catalog.format('unenforced join to %s: no foreign key backs it, so Lethe cannot tell who else owns these rows',
                           pii_internal.qualified_name(coalesce(t.parent_relid, (select s.relid from pii.subject_table s where s.kind = t.kind)))),
         'Add the foreign key and register the table again, or keep the override knowingly'
  from live t
  where t.unenforced_join
  union all
  -- Erasure plans that would violate a constraint (registration refuses them for mode erase).
  select case when p.mode = 'erase' then 'error' else 'warning' end, p.table_name, null,
         case when p.mode = 'erase' then p.problem else 'with mode => delete: ' || p.problem end, p.hint
  from (select distinct on (x.table_name, x.constraint_name) x.*
        from (select 'erase' as mode, e.* from pii_internal.plan_problems('erase') e
              union all select 'delete', d.* from pii_internal.plan_problems('delete') d) x
        order by x.table_name, x.constraint_name, x.mode desc) p
  union all
  -- Shared rows are found by anti-joins on every foreign key into a referenced table.
  select 'warning', pii_internal.qualified_name(f.referencing), f.columns,
         pg_catalog.format('no index leads with the columns of foreign key %s into %s: erasure checks whether its rows are shared by scanning this table',
                           f.conname, pii_internal.qualified_name(f.referenced)),
         pg_catalog.format('create index on %s (%s)', pii_internal.qualified_name(f.referencing), f.columns)
  from pii_internal.shared_row_references() f
  where not f.indexed
  union all
  -- A missing event trigger is how installs without a superuser are: a warning with the manual step.
  select case when g.table_name is null then 'warning' else 'error' end, g.table_name, null, g.problem, g.hint
  from pii_internal.guard_problems() g
  order by 1, 2, 3
$$;
comment on function pii.lint() is 'Lists registry problems: dropped tables and columns, unindexed subject columns, anonymize tables with nothing to erase, missing privileges, table owners Lethe cannot act for, missing or disabled guards, unenforced joins, erasure plans that would violate a constraint (by constraint name, with the fix; in a foreign-key cycle, naming the cycle''s constraints), unindexed foreign keys into tables whose rows may be shared. Example: select * from pii.lint();';

-- A registered table that is dropped leaves the registry with it (and so do the tables
-- registered through it, which lost their path to the subject).
create or replace function pii_internal.forget_dropped_tables() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  gone regclass[];
begin
  with recursive dropped as (
    select t.relid from pii.tables t
    join pg_catalog.pg_event_trigger_dropped_objects() o on o.objid = t.relid::oid and o.object_type = 'table'
    union
    select c.relid from pii.tables c join dropped d on c.parent_relid = d.relid
  )
  select pg_catalog.array_agg(d.relid) into gone from dropped d;
  if gone is null then
    return;
  end if;
  -- One statement: the references between these rows are checked at its end.
  delete from pii.tables t where t.relid = any (gone);
  delete from pii.subject_table s where s.relid = any (gone);
  perform pii_internal.write_audit('unregister_dropped_tables', null, pg_catalog.jsonb_build_object('tables', pg_catalog.cardinality(gone)));
  raise warning 'Lethe: % dropped table(s) removed from the PII registry', pg_catalog.cardinality(gone);
end
$$;
comment on function pii_internal.forget_dropped_tables() is 'Internal. Event trigger: unregisters dropped tables and the tables registered through them.';

do $$
begin
  -- Repeatable: re-created on every apply of this file.
  drop event trigger if exists lethe_registry_sql_drop;
  create event trigger lethe_registry_sql_drop on sql_drop
    when tag in ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED') execute function pii_internal.forget_dropped_tables();
exception when insufficient_privilege then
  raise notice 'Lethe: % may not create event triggers (superuser only): after dropping a registered table, run select * from pii.lint(); and unregister it.', current_user;
end
$$;

grant execute on function pii.register_subject_table(regclass, name, name, boolean, text), pii.register_table(regclass, name, text, name, name, boolean),
  pii.register_child_table(regclass, regclass, name, text, name, name, boolean, text), pii.register_column(regclass, name, text, text, text),
  pii.unregister_column(regclass, name), pii.unregister_table(regclass), pii.unregister_subject_table(text) to pii_admin;
grant execute on function pii.lint() to pii_admin, pii_operator, pii_auditor;
-- The registry views call these helpers with the caller's rights.
grant execute on function pii_internal.qualified_name(regclass), pii_internal.column_name(regclass, smallint), pii_internal.column_type(regclass, smallint),
  pii_internal.has_leading_index(regclass, smallint) to pii_admin, pii_operator, pii_auditor;
