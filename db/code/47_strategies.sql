-- Repeatable code: the strategy catalogs, one row per erase strategy and per mask strategy.
--
-- This file is the one home of a strategy (docs/architecture.md, "Adding a strategy"): the
-- registry checks a rule against its row (pii_internal.check_erase_strategy,
-- check_mask_strategy, 30_registry), erasure and the guards take the SQL from its templates
-- (pii_internal.erase_expression, column_erased_sql, 50_erasure) and so do the masked views
-- (pii_internal.mask_expression, 90_masking). A strategy is written name[:argument]
-- (pii_internal.parse_strategy, 30_registry).
--
-- Columns of both catalogs:
--   name          what a rule starts with ('set' in 'set:DEACTIVATED')
--   syntax        how a rule is written, for hints and docs ('set:<literal>')
--   argument      the argument's form, NULL when it takes none. Each form is parsed and
--                 checked by code (pii_internal.strategy_argument_ok, check_strategy_argument):
--                   literal     a value cast to the column's type (with the owner's rights)
--                   keys        comma-separated top-level jsonb keys, none empty
--                   first,last  two integers 0-9999 (characters shown at each end)
--   types         base type names (domains resolved) the strategy applies to, 'string' for
--                 every string type (text, varchar, char, citext, name); NULL for any type
--   needs         the same in words, for the error ('a jsonb column')
--   example, example_type, example_value, example_result
--                 a rule as written, a column type it fits, a value, and a LIKE pattern of
--                 what the strategy makes of it as text (NULL: the result is NULL; 'anon_%':
--                 it depends on the install key). test/strategies.test.ts runs every example
--                 end to end.
--   doc           one sentence for people
--
-- Erase templates are format() strings over, in this order:
--   %1$s the column (alias t: t."email")     %2$s its type (a domain stays the domain)
--   %3$s its base type (domains resolved)   %4$L the argument
--   %5$L the argument's keys as text[] (form keys)
--   %6$s the column's pseudonym (SQL; the pseudonym key bound as $3/$4)
--   %7$s "the column is a Lethe pseudonym" (SQL predicate, same key)
-- (%6$s and %7$s are built only when the template uses them; a literal % is written %%.)

create or replace function pii_internal.erase_strategies()
returns table (name text, syntax text, argument text, types text[], needs text, nullable boolean, min_length integer,
               erase_sql text, erased_sql text, example text, example_type text, example_value text, example_result text, doc text)
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  values
    ('null', 'null', null, null, null, true, null,
     'null', '%1$s is null',
     'null', 'text', 'jane@example.com', null,
     'The column becomes NULL (refused on a NOT NULL column).'),
    ('set', 'set:<literal>', 'literal', null, null, false, null,
     '%4$L::%2$s',
     -- Compared as the base type: verification runs this in Lethe's context, where the
     -- owner's domain CHECK must not run (erasure and guards run it with the owner's rights).
     '%1$s::%3$s is not distinct from %4$L::%3$s',
     'set:DEACTIVATED', 'text', 'ACTIVE', 'DEACTIVATED',
     'The column becomes the literal, cast to the column''s type (checked when the rule is registered).'),
    ('pseudonym', 'pseudonym', null, array['string', 'uuid'], 'a text or uuid column', false, 37,
     -- A value that already is a pseudonym stays: erasing twice changes nothing.
     'case when %7$s then %1$s else %6$s end', '(%1$s is null or %7$s)',
     'pseudonym', 'text', 'CUST-0042', 'anon_%',
     'Keyed HMAC: anon_<32 hex> for text, a version-8 UUID for uuid; the same input always gives the same pseudonym, so joins on it survive.'),
    ('jsonb_remove', 'jsonb_remove:<key>[,<key>…]', 'keys', array['jsonb'], 'a jsonb column', false, null,
     '%1$s operator(pg_catalog.-) %5$L::text[]', '(%1$s is null or not (%1$s operator(pg_catalog.?|) %5$L::text[]))',
     'jsonb_remove:phone,email', 'jsonb', '{"plan": "pro", "email": "jane@example.com", "phone": "+44 7700 900123"}', '{"plan": "pro"}',
     'Removes top-level keys from a jsonb document; the other keys stay.'),
    ('keep', 'keep', null, null, null, false, null,
     null, null,
     'keep', 'text', 'Order #1001', 'Order #1001',
     'Erasure leaves the column as it is (still classified, e.g. for masking).')
$$;
comment on function pii_internal.erase_strategies() is 'Internal. The erase strategy catalog: per strategy its syntax, argument form, the column types it fits, the format() templates of the erased value and of the "already erased" predicate, an example and a doc line (docs/architecture.md, "Adding a strategy").';

-- Mask templates are format() strings over, in this order:
--   %1$s the column (alias t)              %2$s the column as text
--   %3$s its type                          %4$s its plain type (a domain's base type: a
--                                               domain's CHECK would reject masked values)
--   %5$L the argument
--   %6$s HMAC-SHA256 (bytea) of the column as text, under the mask domain of the install key
--   %7$s the partial mask of the column as text (form first,last: specialised for the two
--        constants by pii_internal.mask_partial_sql, which is code for that reason)
-- mask_sql maps a base type name to its template, '*' for every other type the strategy
-- fits. cast_back: the '*' template gives text, cast back to the column's plain type when
-- that is another string type (varchar(n), char(n), citext, name …).

create or replace function pii_internal.mask_strategies()
returns table (name text, syntax text, argument text, types text[], needs text, mask_sql jsonb, cast_back boolean,
               example text, example_type text, example_value text, example_result text, doc text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  values
    ('hide', 'hide', null, null, null,
     pg_catalog.jsonb_build_object('*', 'null::%4$s'), false,
     'hide', 'text', 'jane@example.com', null,
     'NULL: the column is shown empty (the default).'),
    ('email', 'email', null, array['string'], 'a text column',
     pg_catalog.jsonb_build_object('*',
       'case pg_catalog.strpos(%2$s, ''@'') when 0 then case when %2$s operator(pg_catalog.=) '''' then %2$s else pg_catalog.left(%2$s, 1) operator(pg_catalog.||) ''***'' end '
       'when 1 then ''***@'' operator(pg_catalog.||) pg_catalog.split_part(%2$s, ''@'', -1) '
       'else pg_catalog.left(%2$s, 1) operator(pg_catalog.||) ''***@'' operator(pg_catalog.||) pg_catalog.split_part(%2$s, ''@'', -1) end'), true,
     'email', 'text', 'jane.doe@example.com', 'j***@example.com',
     'First character, ***, and the domain (after the last @); the same as pii.mask_email.'),
    ('partial', 'partial:<first>,<last>', 'first,last', array['string'], 'a text column',
     pg_catalog.jsonb_build_object('*', '%7$s'), true,
     'partial:3,2', 'text', '+44 7700 900123', '+44***23',
     'The first and last characters around ***, only while at least half of the value stays hidden; the same as pii.mask_partial.'),
    ('hash', 'hash', null, null, null,
     pg_catalog.jsonb_build_object(
       'uuid', 'pg_catalog.encode(pg_catalog.substr(%6$s, 1, 16), ''hex'')::pg_catalog.uuid',
       'int8', '(''x'' operator(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(%6$s, 1, 8), ''hex''))::pg_catalog.bit(64)::pg_catalog.int8',
       'int4', '(''x'' operator(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(%6$s, 1, 4), ''hex''))::pg_catalog.bit(32)::pg_catalog.int4',
       'int2', '((''x'' operator(pg_catalog.||) pg_catalog.encode(pg_catalog.substr(%6$s, 1, 2), ''hex''))::pg_catalog.bit(16)::pg_catalog.int4 operator(pg_catalog.-) 32768)::pg_catalog.int2',
       -- dates, numerics, jsonb …: the hash is text
       '*', 'pg_catalog.encode(pg_catalog.substr(%6$s, 1, 16), ''hex'')'), true,
     'hash', 'text', 'jane@example.com', '________________________________',
     'Keyed hash: equal values give equal hashes in every view (joinable); 32 hex for text, a uuid for uuid, the same integer type for int2/4/8, text otherwise; the same as pii.mask_hash.'),
    ('year', 'year', null, array['date', 'timestamp', 'timestamptz'], 'a date or timestamp column',
     pg_catalog.jsonb_build_object(
       'date', 'pg_catalog.date_trunc(''year'', %1$s::pg_catalog.timestamp)::pg_catalog.date',
       'timestamp', 'pg_catalog.date_trunc(''year'', %1$s::pg_catalog.timestamp)',
       'timestamptz', 'pg_catalog.timezone(''UTC'', pg_catalog.date_trunc(''year'', pg_catalog.timezone(''UTC'', %1$s::pg_catalog.timestamptz)))'), false,
     'year', 'date', '1984-06-23', '1984-01-01',
     'January 1st of the year (timestamptz: of the UTC year); the same as pii.mask_year.'),
    ('set', 'set:<literal>', 'literal', null, null,
     pg_catalog.jsonb_build_object('*', '%5$L::%3$s'), false,
     'set:REDACTED', 'text', 'jane@example.com', 'REDACTED',
     'A constant, cast to the column''s type.'),
    ('clear', 'clear', null, null, null,
     pg_catalog.jsonb_build_object('*', '%1$s'), false,
     'clear', 'text', 'Order #1001', 'Order #1001',
     'The value as it is (not PII).')
$$;
comment on function pii_internal.mask_strategies() is 'Internal. The mask strategy catalog: per strategy its syntax, argument form, the column types it fits, the format() templates of the masked view''s expression (per base type), an example and a doc line (docs/architecture.md, "Adding a strategy").';

---------------------------------------------------------------------------------------
-- What the catalogs' checks and templates read about a column, and the code per argument form.

-- The column as the strategy templates see it. Domains: base_name, category and plain_typ
-- come from the domain's base type (one level, as the masked views show it).
create or replace function pii_internal.strategy_column(tbl regclass, col smallint,
  out ref text, out typ text, out base_typ text, out plain_typ text, out base_name name, out category "char",
  out not_null boolean, out char_limit integer, out is_domain boolean)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format('t.%I', a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod),
         pii_internal.column_base_type(tbl, col),
         case when t.typtype = 'd' then pg_catalog.format_type(t.typbasetype, t.typtypmod) else pg_catalog.format_type(a.atttypid, a.atttypmod) end,
         coalesce(bt.typname, t.typname), coalesce(bt.typcategory, t.typcategory), a.attnotnull,
         case when coalesce(bt.typname, t.typname) in ('varchar', 'bpchar')
                   and (case when t.typtype = 'd' then t.typtypmod else a.atttypmod end) operator(pg_catalog.>) 4
              then (case when t.typtype = 'd' then t.typtypmod else a.atttypmod end) operator(pg_catalog.-) 4 end,
         t.typtype = 'd'
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_type t on t.oid = a.atttypid
  left join pg_catalog.pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
  where a.attrelid = tbl and a.attnum = col and not a.attisdropped
$$;
comment on function pii_internal.strategy_column(regclass, smallint) is 'Internal. A column as the strategy catalogs see it: reference (alias t), type, base and plain type, base type name and category, NOT NULL, varchar/char length.';

-- Whether a column of this base type (and category) is one a strategy's types list allows.
create or replace function pii_internal.strategy_fits(types text[], base_name name, category "char") returns boolean
language sql immutable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select types is null or base_name::text operator(pg_catalog.=) any (types)
      or (category operator(pg_catalog.=) 'S' and 'string' operator(pg_catalog.=) any (types))
$$;
comment on function pii_internal.strategy_fits(text[], name, "char") is 'Internal. Whether a column''s base type is one of a strategy''s types (''string'': any string type; NULL: any type).';

-- The checks of an argument form that need no column (the literal form casts, below).
create or replace function pii_internal.strategy_argument_ok(form text, argument text) returns boolean
language sql immutable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select case form
    when 'keys' then not ('' operator(pg_catalog.=) any (pii_internal.strategy_keys(argument)))
    when 'first,last' then argument operator(pg_catalog.~) '^[0-9]{1,4},[0-9]{1,4}$'
    else true end
$$;
comment on function pii_internal.strategy_argument_ok(text, text) is 'Internal. Whether a strategy''s argument has its form (keys: none empty; first,last: two integers 0-9999).';

-- Raises the error of an argument that does not have its form: family is 'erase' or 'mask'.
create or replace function pii_internal.check_strategy_argument(family text, strategy text, syntax text, form text, argument text,
                                                                tbl regclass, typ text, where_ text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if form = 'literal' then
    begin
      perform pii_internal.cast_as_owner(tbl, argument, typ);
    exception when others then
      raise exception '% strategy "%" does not cast to % (column %)', family, strategy, typ, where_ using errcode = '22P02';
    end;
  elsif not pii_internal.strategy_argument_ok(form, argument) then
    raise exception '% strategy "%" % (column %): expected %', family, strategy,
      case form when 'keys' then 'has an empty key' else 'is malformed' end, where_, syntax using errcode = '22023';
  end if;
end
$$;
comment on function pii_internal.check_strategy_argument(text, text, text, text, text, regclass, text, text) is 'Internal. Raises 22P02 when a literal argument does not cast to the column''s type, 22023 when another argument does not have its form.';

-- The rows of both catalogs as the registry checks them: family 'erase' or 'mask'.
create or replace function pii_internal.strategy_entries(family text)
returns table (name text, syntax text, argument text, types text[], needs text, nullable boolean, min_length integer)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select e.name, e.syntax, e.argument, e.types, e.needs, e.nullable, e.min_length
  from pii_internal.erase_strategies() e where family = 'erase'
  union all
  select m.name, m.syntax, m.argument, m.types, m.needs, false, null::integer
  from pii_internal.mask_strategies() m where family = 'mask'
$$;
comment on function pii_internal.strategy_entries(text) is 'Internal. The erase or mask catalog''s rows as the registry checks them.';

-- Validates a rule of a family ('erase' or 'mask') against the column it is for: a known
-- strategy with its argument (22023, the hint lists the catalog), a column type it fits
-- (42804), nullable (23502), long enough (22001), an argument of its form (22P02, 22023).
create or replace function pii_internal.check_strategy(family text, tbl regclass, col smallint, strategy text) returns void
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
    raise exception '% strategy must not be NULL (column %)', family, where_ using errcode = '22004';
  end if;
  select * into e from pii_internal.strategy_entries(family) x where x.name = parsed.name;
  if e.name is null or (parsed.argument is null) <> (e.argument is null) then
    raise exception 'unknown % strategy "%" for column %', family, strategy, where_
      using errcode = '22023', hint = 'Expected one of: ' || (select pg_catalog.string_agg(x.syntax, ', ') from pii_internal.strategy_entries(family) x) || '.';
  end if;
  if not pii_internal.strategy_fits(e.types, c.base_name, c.category) then
    raise exception '% strategy "%" needs %; % is %', family, e.name, e.needs, where_, c.typ using errcode = '42804';
  end if;
  if e.nullable and c.not_null then
    raise exception 'column % is NOT NULL: % strategy "%" cannot apply', where_, family, e.name
      using errcode = '23502', hint = 'Use set:<value> (for example set:DEACTIVATED) or drop the NOT NULL constraint.';
  end if;
  if c.char_limit < e.min_length then
    raise exception 'column % (%) is too short for a % (% characters)', where_, c.typ, e.name, e.min_length using errcode = '22001';
  end if;
  perform pii_internal.check_strategy_argument(family, strategy, e.syntax, e.argument, parsed.argument, tbl, c.typ, where_);
end
$$;
comment on function pii_internal.check_strategy(text, regclass, smallint, text) is 'Internal. Validates an erase or mask rule against its column by the strategy''s catalog row.';

-- A column's erase strategy as SQL: part 'erase_sql' (the value it takes) or 'erased_sql'
-- (the "already erased" predicate), its template filled in (NULL for keep).
create or replace function pii_internal.erase_strategy_sql(part text, tbl regclass, col smallint, strategy text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format(x.template, c.ref, c.typ, c.base_typ, s.argument,
           case when pg_catalog.strpos(x.template, '%5$') operator(pg_catalog.>) 0 then pii_internal.strategy_keys(s.argument) end,
           case when pg_catalog.strpos(x.template, '%6$') operator(pg_catalog.>) 0 then pii_internal.pseudonym_sql(c.ref, c.base_name = 'uuid') end,
           case when pg_catalog.strpos(x.template, '%7$') operator(pg_catalog.>) 0 then pii_internal.is_pseudonym_sql(c.ref, c.base_name = 'uuid') end)
  from pii_internal.parse_strategy(strategy) s
  join pii_internal.erase_strategies() e on e.name operator(pg_catalog.=) s.name
  cross join lateral (select case part when 'erase_sql' then e.erase_sql when 'erased_sql' then e.erased_sql end as template) x
  cross join pii_internal.strategy_column(tbl, col) c
$$;
comment on function pii_internal.erase_strategy_sql(text, regclass, smallint, text) is 'Internal. The erase_sql or erased_sql template of a column''s erase strategy (erase_strategies()), filled in for the column (alias t).';

revoke execute on all functions in schema pii, pii_internal from public;
