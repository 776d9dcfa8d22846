-- Repeatable code: the registry (register_*, unregister_*, lint, registered_* views) and its checks.

comment on table pii.subject_table is 'The one table whose rows are data subjects (customers, contacts).';
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
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format('%I.%I', n.nspname, c.relname)
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.oid = tbl
$$;
comment on function pii_internal.qualified_name(regclass) is 'Internal. schema.table, each part quoted as an identifier.';

create or replace function pii_internal.column_name(tbl regclass, col smallint) returns name
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select a.attname from pg_catalog.pg_attribute a
  where a.attrelid = tbl and a.attnum = col and not a.attisdropped
$$;
comment on function pii_internal.column_name(regclass, smallint) is 'Internal. Name of a live column by attnum (NULL when dropped).';

create or replace function pii_internal.column_type(tbl regclass, col smallint) returns text
language sql stable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format_type(a.atttypid, a.atttypmod) from pg_catalog.pg_attribute a
  where a.attrelid = tbl and a.attnum = col and not a.attisdropped
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

-- Both read the strategy catalogs (47_strategies): the strategy's row, the column types it
-- fits, and its argument form.
create or replace function pii_internal.check_erase_strategy(tbl regclass, col smallint, strategy text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  where_ text := pg_catalog.format('%s.%I', pii_internal.qualified_name(tbl), pii_internal.column_name(tbl, col));
  c record := pii_internal.strategy_column(tbl, col);
  parsed record := pii_internal.parse_strategy(strategy);
  e record;
begin
  if strategy is null then
    raise exception 'erase strategy must not be NULL (column %)', where_ using errcode = '22004';
  end if;
  select * into e from pii_internal.erase_strategies() x where x.name = parsed.name;
  if e.name is null or (parsed.argument is null) <> (e.argument is null) then
    raise exception 'unknown erase strategy "%" for column %', strategy, where_
      using errcode = '22023', hint = 'Expected one of: ' || (select pg_catalog.string_agg(x.syntax, ', ') from pii_internal.erase_strategies() x) || '.';
  end if;
  if not pii_internal.strategy_fits(e.types, c.base_name, c.category) then
    raise exception 'erase strategy "%" needs %; % is %', e.name, e.needs, where_, c.typ using errcode = '42804';
  end if;
  if e.nullable and c.not_null then
    raise exception 'column % is NOT NULL: erase strategy "%" cannot apply', where_, e.name
      using errcode = '23502', hint = 'Use set:<value> (for example set:DEACTIVATED) or drop the NOT NULL constraint.';
  end if;
  if c.char_limit < e.min_length then
    raise exception 'column % (%) is too short for a % (% characters)', where_, c.typ, e.name, e.min_length using errcode = '22001';
  end if;
  perform pii_internal.check_strategy_argument('erase', strategy, e.syntax, e.argument, parsed.argument, tbl, c.typ, where_);
end
$$;
comment on function pii_internal.check_erase_strategy(regclass, smallint, text) is 'Internal. Validates an erase strategy against the column it is for, by its row in pii_internal.erase_strategies().';

create or replace function pii_internal.check_mask_strategy(tbl regclass, col smallint, strategy text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  where_ text := pg_catalog.format('%s.%I', pii_internal.qualified_name(tbl), pii_internal.column_name(tbl, col));
  c record := pii_internal.strategy_column(tbl, col);
  parsed record := pii_internal.parse_strategy(strategy);
  m record;
begin
  if strategy is null then
    raise exception 'mask strategy must not be NULL (column %)', where_ using errcode = '22004';
  end if;
  select * into m from pii_internal.mask_strategies() x where x.name = parsed.name;
  if m.name is null or (parsed.argument is null) <> (m.argument is null) then
    raise exception 'unknown mask strategy "%" for column %', strategy, where_
      using errcode = '22023', hint = 'Expected one of: ' || (select pg_catalog.string_agg(x.syntax, ', ') from pii_internal.mask_strategies() x) || '.';
  end if;
  if not pii_internal.strategy_fits(m.types, c.base_name, c.category) then
    raise exception 'mask strategy "%" needs %; % is %', m.name, m.needs, where_, c.typ using errcode = '42804';
  end if;
  perform pii_internal.check_strategy_argument('mask', strategy, m.syntax, m.argument, parsed.argument, tbl, c.typ, where_);
end
$$;
comment on function pii_internal.check_mask_strategy(regclass, smallint, text) is 'Internal. Validates a mask strategy against the column it is for, by its row in pii_internal.mask_strategies().';

revoke execute on all functions in schema pii, pii_internal from public;

---------------------------------------------------------------------------------------
-- Public registry API

create or replace function pii.register_subject_table(tbl regclass, key_column name, scope_column name default null, key_is_pii boolean default false)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  key_n smallint;
  scope_n smallint;
  existing regclass;
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

  select s.relid into existing from pii.subject_table s;
  if existing is not null and existing <> tbl then
    raise exception 'a subject table is already registered (%); Lethe has one per install', pii_internal.qualified_name(existing)
      using errcode = '55000', hint = 'Call pii.unregister_subject_table() first.';
  end if;
  if existing is not null and exists (select from pii.tables t where t.relid <> tbl) then
    raise exception 'subject table % cannot change while other tables are registered', pii_internal.qualified_name(tbl)
      using errcode = '55000';
  end if;

  insert into pii.subject_table (relid, key_attnum, scope_attnum, key_is_pii)
  values (tbl, key_n, scope_n, coalesce(key_is_pii, false))
  on conflict (singleton) do update
    set key_attnum = excluded.key_attnum, scope_attnum = excluded.scope_attnum, key_is_pii = excluded.key_is_pii;

  insert into pii.tables (relid, subject_attnum, scope_attnum, on_erase)
  values (tbl, key_n, scope_n, 'anonymize')
  on conflict (relid) do update set subject_attnum = excluded.subject_attnum, scope_attnum = excluded.scope_attnum, on_erase = 'anonymize';

  if not pii_internal.has_leading_index(tbl, coalesce(scope_n, key_n)) and not pii_internal.has_leading_index(tbl, key_n) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(tbl), key_column
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(tbl), key_column);
  end if;
  perform pii_internal.write_audit('register_subject_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'key_is_pii', coalesce(key_is_pii, false), 'scoped', scope_n is not null));
end
$$;
comment on function pii.register_subject_table(regclass, name, name, boolean) is
$$Registers the table whose rows are data subjects (one per install). Its record is kept on erasure (anonymize).
scope_column makes a subject (scope, key), for brands whose keys overlap. key_is_pii replaces the key with a
pseudonym everywhere it is referenced on erasure (referencing foreign keys must be ON UPDATE CASCADE).
Example: select pii.register_subject_table('crm.customers', 'id', scope_column => 'brand_id');$$;

create or replace function pii.register_table(tbl regclass, subject_column name, on_erase text, scope_column name default null)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
  col_n smallint;
  scope_n smallint;
  fk record;
begin
  if tbl is null then
    raise exception 'table must not be NULL' using errcode = '22004';
  end if;
  select * into subj from pii.subject_table;
  if subj.relid is null then
    raise exception 'no subject table is registered yet' using errcode = '55000',
      hint = 'Call pii.register_subject_table(...) first.';
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

  insert into pii.tables (relid, subject_attnum, scope_attnum, on_erase)
  values (tbl, col_n, scope_n, on_erase)
  on conflict (relid) do update
    set subject_attnum = excluded.subject_attnum, scope_attnum = excluded.scope_attnum, on_erase = excluded.on_erase,
        parent_relid = null, parent_fk_attnum = null, parent_key_attnum = null;

  if not pii_internal.has_leading_index(tbl, col_n) and (scope_n is null or not pii_internal.has_leading_index(tbl, scope_n)) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(tbl), subject_column
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(tbl), subject_column);
  end if;
  perform pii_internal.write_audit('register_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'on_erase', on_erase));
end
$$;
comment on function pii.register_table(regclass, name, text, name) is
$$Registers a table whose rows belong to a subject through subject_column. on_erase: anonymize (keep the row,
apply column strategies) or delete (remove the rows: behavioural history). In a scoped install scope_column
defaults to the subject table's scope column name. Warns when subject_column has no index.
Example: select pii.register_table('crm.events', 'customer_id', 'delete');$$;

create or replace function pii.register_child_table(tbl regclass, parent regclass, fk_column name, on_erase text default 'delete', parent_column name default null)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  fk_n smallint;
  key_n smallint;
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
  fk_n := pii_internal.column_attnum(tbl, fk_column);
  if parent_column is not null then
    key_n := pii_internal.column_attnum(parent, parent_column);
  else
    -- The column the foreign key references, else the parent's one-column primary key.
    select c.confkey[1] into key_n from pg_catalog.pg_constraint c
    where c.conrelid = tbl and c.contype = 'f' and c.confrelid = parent and c.conkey = array[fk_n];
    if key_n is null then
      select c.conkey[1] into key_n from pg_catalog.pg_constraint c
      where c.conrelid = parent and c.contype = 'p' and pg_catalog.array_length(c.conkey, 1) = 1;
    end if;
    if key_n is null then
      raise exception 'cannot tell which column of % %.% refers to', pii_internal.qualified_name(parent), pii_internal.qualified_name(tbl), fk_column
        using errcode = '55000', hint = 'Pass parent_column.';
    end if;
  end if;

  insert into pii.tables (relid, parent_relid, parent_fk_attnum, parent_key_attnum, on_erase)
  values (tbl, parent, fk_n, key_n, on_erase)
  on conflict (relid) do update
    set subject_attnum = null, scope_attnum = null, parent_relid = excluded.parent_relid,
        parent_fk_attnum = excluded.parent_fk_attnum, parent_key_attnum = excluded.parent_key_attnum, on_erase = excluded.on_erase;

  if not pii_internal.has_leading_index(tbl, fk_n) then
    raise warning 'no index on %.%: every erasure will scan the table', pii_internal.qualified_name(tbl), fk_column
      using hint = pg_catalog.format('create index on %s (%I)', pii_internal.qualified_name(tbl), fk_column);
  end if;
  perform pii_internal.write_audit('register_child_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(tbl), 'parent', pii_internal.qualified_name(parent), 'on_erase', on_erase));
end
$$;
comment on function pii.register_child_table(regclass, regclass, name, text, name) is
$$Registers a table that reaches the subject only through a registered parent (order_items -> orders -> customers),
any depth. Its rows follow the parent: when the parent's rows are deleted, so are these. parent_column defaults to
the column fk_column references, else the parent's primary key.
Example: select pii.register_child_table('crm.order_items', 'crm.orders', 'order_id', 'anonymize');$$;

create or replace function pii.register_column(tbl regclass, col name, erase text, mask text default 'hide', category text default 'pii')
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  n smallint;
begin
  if tbl is null then
    raise exception 'table must not be NULL' using errcode = '22004';
  end if;
  select * into reg from pii.tables t where t.relid = tbl;
  if reg.relid is null then
    raise exception 'table % is not registered', pii_internal.qualified_name(tbl)
      using errcode = '55000', hint = 'Call pii.register_table (or register_subject_table / register_child_table) first.';
  end if;
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

create or replace function pii.unregister_subject_table() returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj regclass;
begin
  select s.relid into subj from pii.subject_table s;
  if subj is null then
    return false;
  end if;
  if exists (select from pii.tables t where t.relid <> subj) then
    raise exception 'other tables are registered; unregister them first' using errcode = '2BP01';
  end if;
  delete from pii.tables t where t.relid = subj;
  delete from pii.subject_table;
  perform pii_internal.write_audit('unregister_subject_table', null, pg_catalog.jsonb_build_object('table', pii_internal.qualified_name(subj)));
  return true;
end
$$;
comment on function pii.unregister_subject_table() is 'Removes the subject table registration (only when no other table is registered). Example: select pii.unregister_subject_table();';

---------------------------------------------------------------------------------------
-- Views over the registry (names, not attnums)

create or replace view pii.registered_tables with (security_barrier) as
select
  pii_internal.qualified_name(t.relid) as table_name,
  case when s.relid is not null then 'subject' when t.parent_relid is null then 'direct' else 'via parent' end as link,
  pii_internal.column_name(t.relid, t.subject_attnum) as subject_column,
  pii_internal.qualified_name(t.parent_relid) as parent_table,
  pii_internal.column_name(t.relid, t.parent_fk_attnum) as parent_fk_column,
  pii_internal.column_name(t.parent_relid, t.parent_key_attnum) as parent_key_column,
  pii_internal.column_name(t.relid, t.scope_attnum) as scope_column,
  t.on_erase,
  t.guard_mode,
  coalesce(s.key_is_pii, false) as key_is_pii,
  pii_internal.has_leading_index(t.relid, coalesce(t.subject_attnum, t.parent_fk_attnum)) as has_index,
  (select pg_catalog.count(*) from pii.columns c where c.relid = t.relid and c.category <> 'not_pii') as pii_columns,
  t.registered_at
from pii.tables t
left join pii.subject_table s on s.relid = t.relid;
comment on view pii.registered_tables is 'Registered tables: how each reaches the subject, what erasure does to its rows, whether the subject lookup is indexed.';

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
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive up (relid, depth) as (
    select rel::oid, 0
    union all
    select i.inhparent, up.depth + 1 from pg_catalog.pg_inherits i join up on i.inhrelid = up.relid
  )
  select t.relid from up join pii.tables t on t.relid::oid = up.relid order by up.depth limit 1
$$;
comment on function pii_internal.registered_ancestor(regclass) is 'Internal. The registered table whose guard covers a table: itself, or its nearest registered ancestor (partitions and inheritance children).';

-- The tables a registered table's guards go on: itself and every partition and
-- inheritance child at any depth (a statement naming a child fires only the child's
-- triggers), except children registered themselves (they have their own guards).
create or replace function pii_internal.guarded_tree(tbl regclass) returns setof regclass
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive down (relid) as (
    select tbl::oid
    union
    select i.inhrelid from pg_catalog.pg_inherits i join down on i.inhparent = down.relid
    where not exists (select from pii.tables t where t.relid::oid = i.inhrelid)
  )
  select down.relid::regclass from down
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
  -- A missing event trigger is how installs without a superuser are: a warning with the manual step.
  select case when g.table_name is null then 'warning' else 'error' end, g.table_name, null, g.problem, g.hint
  from pii_internal.guard_problems() g
  order by 1, 2, 3
$$;
comment on function pii.lint() is 'Lists registry problems: dropped tables and columns, unindexed subject columns, anonymize tables with nothing to erase, missing privileges, table owners Lethe cannot act for, missing or disabled guards. Example: select * from pii.lint();';

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

grant execute on function pii.register_subject_table(regclass, name, name, boolean), pii.register_table(regclass, name, text, name),
  pii.register_child_table(regclass, regclass, name, text, name), pii.register_column(regclass, name, text, text, text),
  pii.unregister_column(regclass, name), pii.unregister_table(regclass), pii.unregister_subject_table() to pii_admin;
grant execute on function pii.lint() to pii_admin, pii_operator, pii_auditor;
-- The registry views call these helpers with the caller's rights.
grant execute on function pii_internal.qualified_name(regclass), pii_internal.column_name(regclass, smallint), pii_internal.column_type(regclass, smallint),
  pii_internal.has_leading_index(regclass, smallint) to pii_admin, pii_operator, pii_auditor;
