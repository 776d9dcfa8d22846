-- Repeatable code: mask functions, masked views (apply_masking) and the triggers that keep them current.

comment on table pii.masked_views is 'The masked view of each registered table and the definition it was last built from (empty while a rebuild is pending, with the grants to restore in saved_acl).';
revoke all on pii.masked_views from public;
grant select on pii.masked_views to pii_admin, pii_auditor;

---------------------------------------------------------------------------------------
-- Public masking functions. The masked views inline the same expressions (see
-- pii_internal.mask_expression); test/masking.functions.test.ts checks both agree.

create or replace function pii.mask_email(value text) returns text
language sql immutable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select case pg_catalog.strpos(value, '@')
    when 0 then case when value operator(pg_catalog.=) '' then value
                     else pg_catalog.left(value, 1) operator(pg_catalog.||) '***' end
    when 1 then '***@' operator(pg_catalog.||) pg_catalog.split_part(value, '@', -1)
    else pg_catalog.left(value, 1) operator(pg_catalog.||) '***@' operator(pg_catalog.||) pg_catalog.split_part(value, '@', -1)
  end
$$;
comment on function pii.mask_email(text) is
$$Masks an email address: first character, ***, and the domain (after the last @).
No @: first character and ***. Empty stays empty, NULL stays NULL.
Example: select pii.mask_email('jane.doe@example.com'); -- j***@example.com$$;

create or replace function pii.mask_partial(value text, first integer, last integer) returns text
language plpgsql immutable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if first is null or last is null then
    raise exception 'mask_partial: first and last must not be NULL' using errcode = '22004';
  end if;
  if first < 0 or last < 0 or first > 9999 or last > 9999 then
    raise exception 'mask_partial: first (%) and last (%) must be between 0 and 9999', first, last using errcode = '22023';
  end if;
  if value is null or value = '' then
    return value;
  end if;
  -- Shown only while at least half of the characters stay hidden.
  if first + last > 0 and pg_catalog.char_length(value) >= 2 * (first + last) then
    return pg_catalog.left(value, first) || '***' || pg_catalog.right(value, last);
  end if;
  return '***';
end
$$;
comment on function pii.mask_partial(text, integer, integer) is
$$Keeps the first and last characters of a value, replacing the middle with ***. A value too short for
at least half of it to stay hidden (fewer than 2 * (first + last) characters) becomes ***. Characters,
not bytes: unicode is never cut inside a character. Empty stays empty, NULL stays NULL.
Example: select pii.mask_partial('+44 7700 900123', 3, 2); -- +44***23$$;

create or replace function pii.mask_year(value date) returns date
language sql immutable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.date_trunc('year', value::pg_catalog.timestamp)::pg_catalog.date
$$;
comment on function pii.mask_year(date) is 'Truncates a date to January 1st of its year. Example: select pii.mask_year(date ''1984-06-23''); -- 1984-01-01';

create or replace function pii.mask_year(value timestamp) returns timestamp
language sql immutable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.date_trunc('year', value)
$$;
comment on function pii.mask_year(timestamp) is 'Truncates a timestamp to January 1st, 00:00 of its year. Example: select pii.mask_year(timestamp ''1984-06-23 10:30''); -- 1984-01-01 00:00:00';

create or replace function pii.mask_year(value timestamptz) returns timestamptz
language sql immutable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.timezone('UTC', pg_catalog.date_trunc('year', pg_catalog.timezone('UTC', value)))
$$;
comment on function pii.mask_year(timestamptz) is
$$Truncates a timestamptz to January 1st, 00:00 UTC of its year in UTC (the same result whatever the session's TimeZone).
Example: select pii.mask_year(timestamptz '1984-06-23 10:30+02'); -- 1984-01-01 00:00:00+00 (shown in your TimeZone)$$;

-- The keyed hash of the hash mask. Not granted to masked readers: whoever can call it can
-- test guesses ("is this hash pii.mask_hash('jane@example.com')?").
create or replace function pii.mask_hash(value text) returns text
language sql stable strict parallel safe security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(s.outer_key operator(pg_catalog.||)
           pg_catalog.sha256(s.inner_key operator(pg_catalog.||) '\xff6d61736b1f'::pg_catalog.bytea
                             operator(pg_catalog.||) pg_catalog.convert_to(value, 'UTF8'))), 1, 16), 'hex')
  from pii.secret s
$$;
comment on function pii.mask_hash(text) is
$$The hash mask of a value as masked views show it: 32 hex characters of HMAC-SHA256 under the install key
(domain-separated from subject hashes and pseudonyms). Equal values give equal hashes in every view, so masked
views join on them; without the key nobody can compute them. uuid columns show the same 16 bytes as a uuid, other
non-text columns hash their text form. For admins only: a masked reader who could call it could test guesses.
Example: select * from masked.customers where external_ref = pii.mask_hash('6f1c…-…')::uuid;$$;

---------------------------------------------------------------------------------------
-- Internal: the SQL expressions the views inline.

-- Partial mask over a text expression x, specialised for constant first/last (same result
-- as pii.mask_partial).
create or replace function pii_internal.mask_partial_sql(x text, first integer, last integer) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when first + last = 0 then
    pg_catalog.format('case when %1$s operator(pg_catalog.<>) '''' then ''***''::pg_catalog.text else %1$s end', x)
  else pg_catalog.format(
    'case when pg_catalog.char_length(%1$s) operator(pg_catalog.>=) %2$s then %3$s when %1$s operator(pg_catalog.<>) '''' then ''***''::pg_catalog.text else %1$s end',
    x, 2 * (first + last),
    case when last = 0 then pg_catalog.format('pg_catalog.left(%s, %s) operator(pg_catalog.||) ''***''::pg_catalog.text', x, first)
         when first = 0 then pg_catalog.format('''***''::pg_catalog.text operator(pg_catalog.||) pg_catalog.right(%s, %s)', x, last)
         else pg_catalog.format('pg_catalog.left(%1$s, %2$s) operator(pg_catalog.||) ''***''::pg_catalog.text operator(pg_catalog.||) pg_catalog.right(%1$s, %3$s)', x, first, last) end)
  end
$$;
comment on function pii_internal.mask_partial_sql(text, integer, integer) is 'Internal. SQL text of the partial mask over a text expression.';

-- HMAC-SHA256 (bytea) of the mask domain over a text expression, the key read with the
-- view owner's rights (readers never see it: it is not an output column).
create or replace function pii_internal.mask_hmac_sql(x text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format(
    'pg_catalog.sha256((select s.outer_key from pii.secret s) operator(pg_catalog.||) '
    'pg_catalog.sha256((select s.inner_key operator(pg_catalog.||) ''\xff6d61736b1f''::pg_catalog.bytea from pii.secret s) '
    'operator(pg_catalog.||) pg_catalog.convert_to(%s, ''UTF8'')))', x)
$$;
comment on function pii_internal.mask_hmac_sql(text) is 'Internal. SQL text of the hash mask''s HMAC over a text expression.';

-- Whether a column of a registered table holds the subject key (the key itself, a direct
-- table's subject column, or a foreign key to a column that does).
create or replace function pii_internal.holds_subject_key(tbl regclass, col smallint) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select exists (select from pii.subject_table s where s.relid = tbl and s.key_attnum = col)
      or exists (select from pii.tables t where t.relid = tbl and t.subject_attnum = col)
      or exists (select from pii.tables t
                 where t.relid = tbl and t.parent_fk_attnum = col
                   and pii_internal.holds_subject_key(t.parent_relid, t.parent_key_attnum))
$$;
comment on function pii_internal.holds_subject_key(regclass, smallint) is 'Internal. Whether a column holds the subject key (directly or through registered foreign keys).';

-- Whether a column links rows to their subject or parent (subject key, scope, foreign key
-- to a registered parent, or a key a registered child refers to): structural, not PII
-- unless it holds a key that is itself PII.
create or replace function pii_internal.is_link_column(tbl regclass, col smallint) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select exists (select from pii.subject_table s where s.relid = tbl and col in (s.key_attnum, s.scope_attnum))
      or exists (select from pii.tables t where t.relid = tbl and col in (t.subject_attnum, t.scope_attnum, t.parent_fk_attnum))
      or exists (select from pii.tables t where t.parent_relid = tbl and t.parent_key_attnum = col)
$$;
comment on function pii_internal.is_link_column(regclass, smallint) is 'Internal. Whether a column is a subject key, scope, or registered foreign/parent key.';

-- How a column appears in its masked view: the rule that applies (strategy, or
-- 'key', 'key:hash', 'unclassified:hide', 'unclassified:clear') and the SQL expression
-- (alias t) of the right type. A strategy that no longer fits the column's type (the
-- column was altered since it was registered) falls back to hide: fail closed.
create or replace function pii_internal.mask_expression(tbl regclass, col smallint, out rule text, out expression text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  att record;
  strategy text;
  x text;
  txt text;
  typ text;
  plain_typ text;
  base_name name;
  parsed record;
  m record;
  template text;
begin
  select a.attname, a.atttypid, a.atttypmod, pg_catalog.format_type(a.atttypid, a.atttypmod) as typ,
         t.typtype, t.typbasetype, t.typtypmod,
         coalesce(bt.typname, t.typname) as base_name, coalesce(bt.typcategory, t.typcategory) as category
    into att
  from pg_catalog.pg_attribute a
  join pg_catalog.pg_type t on t.oid = a.atttypid
  left join pg_catalog.pg_type bt on t.typtype = 'd' and bt.oid = t.typbasetype
  where a.attrelid = tbl and a.attnum = col and not a.attisdropped;
  if not found then
    return;
  end if;
  x := pg_catalog.format('t.%I', att.attname);
  typ := att.typ;
  -- Masked values are shown in the plain (base) type of a domain: a domain's CHECK or
  -- NOT NULL would reject them.
  plain_typ := case when att.typtype = 'd' then pg_catalog.format_type(att.typbasetype, att.typtypmod) else typ end;
  base_name := att.base_name;
  txt := case when base_name = 'text' and att.typtype <> 'd' then x else x || '::pg_catalog.text' end;

  select c.mask into strategy from pii.columns c where c.relid = tbl and c.attnum = col;
  if strategy is null then
    if pii_internal.is_link_column(tbl, col) then
      if pii_internal.holds_subject_key(tbl, col) and exists (select from pii.subject_table s where s.key_is_pii) then
        strategy := 'hash';
        rule := 'key:hash';
      else
        rule := 'key';
        expression := x;
        return;
      end if;
    elsif (select s.privacy_by_default from pii.settings s) then
      rule := 'unclassified:hide';
      expression := pg_catalog.format('null::%s', plain_typ);
      return;
    else
      rule := 'unclassified:clear';
      expression := x;
      return;
    end if;
  else
    rule := strategy;
  end if;

  -- The strategy's row in the catalog (47_strategies) and its template for this base type.
  parsed := pii_internal.parse_strategy(strategy);
  select * into m from pii_internal.mask_strategies() ms where ms.name operator(pg_catalog.=) parsed.name;
  if m.name is null or (parsed.argument is null) <> (m.argument is null)
     or not pii_internal.strategy_fits(m.types, base_name, att.category)
     or not pii_internal.strategy_argument_ok(m.argument, parsed.argument) then
    -- The rule no longer fits the column (its type changed): hide it until re-registered.
    rule := 'hide (' || strategy || ' does not fit ' || typ || ')';
    expression := pg_catalog.format('null::%s', plain_typ);
    return;
  end if;
  template := m.mask_sql ->> base_name::text;
  expression := pg_catalog.format(coalesce(template, m.mask_sql ->> '*'), x, txt, typ, plain_typ, parsed.argument,
    case when pg_catalog.strpos(m.mask_sql::text, '%6$') > 0 then pii_internal.mask_hmac_sql(txt) end,
    case when m.argument = 'first,last' then
      pii_internal.mask_partial_sql(txt, pg_catalog.split_part(parsed.argument, ',', 1)::integer, pg_catalog.split_part(parsed.argument, ',', 2)::integer) end);
  -- Back to the column's type (varchar(n), char(n), citext, name …), where it differs.
  if m.cast_back and template is null and att.category = 'S' and plain_typ not in ('text', 'pg_catalog.text') then
    expression := pg_catalog.format('(%s)::%s', expression, plain_typ);
  end if;
end
$$;
comment on function pii_internal.mask_expression(regclass, smallint) is 'Internal. The rule applying to a column in its masked view and the SQL expression (alias t) that shows it.';

-- The name of a table's masked view: the table's name, or schema_table when a table of the
-- same name registered earlier already has it.
create or replace function pii_internal.masked_view_name(tbl regclass) returns name
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when exists (
           select from pii.tables o join pg_catalog.pg_class oc on oc.oid = o.relid
           where oc.relname = c.relname and o.relid <> tbl
             and (o.registered_at, o.relid::oid) < (select t.registered_at, t.relid::oid from pii.tables t where t.relid = tbl))
         then (n.nspname || '_' || c.relname)::name
         else c.relname end
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.oid = tbl
$$;
comment on function pii_internal.masked_view_name(regclass) is 'Internal. Name of a registered table''s view in schema masked.';

-- The SELECT a table's masked view is made of.
create or replace function pii_internal.masked_view_sql(tbl regclass) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select 'select ' || pg_catalog.string_agg(pg_catalog.format('%s as %I', m.expression, a.attname), ', ' order by a.attnum)
         || ' from ' || pii_internal.qualified_name(tbl) || ' t'
  from pg_catalog.pg_attribute a, pii_internal.mask_expression(tbl, a.attnum) m
  where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped
$$;
comment on function pii_internal.masked_view_sql(regclass) is 'Internal. The query of a registered table''s masked view.';

-- Drops a masked view (and forgets it). Raises when something depends on it.
create or replace function pii_internal.drop_masked_view(tbl regclass) returns boolean
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  v name;
begin
  delete from pii.masked_views m where m.relid = tbl returning m.view_name into v;
  if v is null then
    return false;
  end if;
  execute pg_catalog.format('drop view if exists masked.%I', v);
  return true;
end
$$;
comment on function pii_internal.drop_masked_view(regclass) is 'Internal. Drops a table''s masked view and its bookkeeping row.';

-- Grants again what an ACL granted on a masked view (the owner's own entries aside), after
-- the view had to be dropped and made again.
create or replace function pii_internal.restore_view_acl(view_name name, acl aclitem[]) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  g record;
begin
  for g in
    select a.privilege_type, a.grantee, a.is_grantable
    from pg_catalog.aclexplode(acl) a
    where a.grantee <> (select c.relowner from pg_catalog.pg_class c where c.relnamespace = 'masked'::regnamespace and c.relname = view_name)
  loop
    execute pg_catalog.format('grant %s on masked.%I to %s%s', g.privilege_type, view_name,
                              case when g.grantee = 0 then 'public' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(g.grantee)) end,
                              case when g.is_grantable then ' with grant option' else '' end);
  end loop;
end
$$;
comment on function pii_internal.restore_view_acl(name, aclitem[]) is 'Internal. Re-grants the privileges of a saved ACL on a masked view.';

-- (Re)builds the masked views of the given tables (all registered tables and every view
-- Lethe made when NULL). Unchanged definitions are left alone. strict: raise on a failed
-- build (registry changes: the registry change is refused rather than leave a view that
-- shows more than its rules allow); otherwise warn (DDL: never fail the user's command).
-- A view that cannot be rebuilt is dropped: masked readers lose it, never see more.
-- masking_rebuild in steps: per table masking_rebuild_one (drop the view of a table no longer
-- registered, leave an unchanged view, else check the name is this table's
-- (masking_check_view_name), write the view (masking_write_view), grant, comment it
-- (masking_comment_view) and record it); masking_rebuild runs it over the tables and fails
-- closed.

-- Never replace a view that is not this table's: another table's, or not Lethe's.
create or replace function pii_internal.masking_check_view_name(tbl regclass, old_view_name name, view_name name) returns void
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if exists (select from pii.masked_views m where m.view_name = masking_check_view_name.view_name and m.relid <> tbl) then
    raise exception 'masked.% already belongs to another registered table', view_name using errcode = '42P07';
  end if;
  if old_view_name is distinct from view_name then
    raise exception 'masked.% exists and was not made by Lethe', view_name using errcode = '42P07',
      hint = 'Rename or drop it, then call pii.apply_masking().';
  end if;
end
$$;
comment on function pii_internal.masking_check_view_name(regclass, name, name) is 'Internal. Step of masking_rebuild: refuses (42P07) to replace a masked view that belongs to another table or was not made by Lethe.';

-- Creates or replaces a masked view; returns created, replaced or recreated.
create or replace function pii_internal.masking_write_view(view_name name, sql_ text, exists_ boolean, saved_acl aclitem[]) returns text
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  acl aclitem[];
  action text := case when exists_ then 'replaced' else 'created' end;
begin
  begin
    execute pg_catalog.format('create or replace view masked.%I as %s', view_name, sql_);
  exception when feature_not_supported or invalid_table_definition or datatype_mismatch or duplicate_column or invalid_column_reference then
    -- A column was dropped, renamed or changed type: CREATE OR REPLACE cannot do that.
    -- Drop and create, keeping the grants a DBA made on the view.
    select c.relacl into acl from pg_catalog.pg_class c where c.relnamespace = 'masked'::regnamespace and c.relname = view_name;
    execute pg_catalog.format('drop view masked.%I', view_name);
    execute pg_catalog.format('create view masked.%I as %s', view_name, sql_);
    perform pii_internal.restore_view_acl(view_name, acl);
    action := 'recreated';
  end;
  if action = 'created' and saved_acl is not null then
    -- Dropped by the DDL event trigger: the grants come back with the view.
    perform pii_internal.restore_view_acl(view_name, saved_acl);
    action := 'recreated';
  end if;
  return action;
end
$$;
comment on function pii_internal.masking_write_view(name, text, boolean, aclitem[]) is 'Internal. Step of masking_rebuild: creates or replaces a masked view (drop and create when a column changed, keeping its grants); returns created, replaced or recreated.';

-- The comments of a masked view and of each of its columns (what the column shows).
create or replace function pii_internal.masking_comment_view(tbl regclass, view_name name) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  col record;
begin
  execute pg_catalog.format('comment on view masked.%I is %L', view_name,
                            pg_catalog.format('Masked view of %s (Lethe): registered PII columns masked, unclassified columns %s. Rebuilt by pii.apply_masking().',
                                              pii_internal.qualified_name(tbl),
                                              case when (select s.privacy_by_default from pii.settings s) then 'hidden (NULL)' else 'shown' end));
  for col in
    select a.attname, m.rule from pg_catalog.pg_attribute a, pii_internal.mask_expression(tbl, a.attnum) m
    where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped
  loop
    execute pg_catalog.format('comment on column masked.%I.%I is %L', view_name, col.attname,
      case when col.rule = 'clear' then 'shown (classified: clear)'
           when col.rule = 'key' then 'shown (key linking rows to their subject)'
           when col.rule = 'key:hash' then 'keyed hash (the subject key is PII)'
           when col.rule = 'unclassified:hide' then 'hidden: not classified yet (privacy by default); see pii.unclassified_columns()'
           when col.rule = 'unclassified:clear' then 'shown: not classified (privacy by default is off)'
           else 'masked: ' || col.rule end);
  end loop;
end
$$;
comment on function pii_internal.masking_comment_view(regclass, name) is 'Internal. Step of masking_rebuild: comments a masked view and each of its columns.';

-- Rebuilds one table's masked view; returns its name and what was done (raises on failure).
create or replace function pii_internal.masking_rebuild_one(tbl regclass, out view_name name, out action text)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  old pii.masked_views;
  sql_ text;
  exists_ boolean;
begin
  select * into old from pii.masked_views m where m.relid = tbl;
  -- No longer registered, or the table is gone: the view goes.
  if not exists (select from pii.tables t where t.relid = tbl)
     or not exists (select from pg_catalog.pg_class c where c.oid = tbl) then
    view_name := old.view_name;
    action := case when pii_internal.drop_masked_view(tbl) then 'dropped'
                   else 'skipped: the table no longer exists (select pii.unregister_table(' || tbl::oid || '))' end;
    return;
  end if;

  view_name := pii_internal.masked_view_name(tbl);
  sql_ := pii_internal.masked_view_sql(tbl);
  select exists (select from pg_catalog.pg_class c where c.relnamespace = 'masked'::regnamespace and c.relname = masking_rebuild_one.view_name)
    into exists_;
  if old.relid is not null and old.view_name = view_name and old.definition = sql_ and exists_ then
    action := 'unchanged';
    return;
  end if;
  if exists_ then
    perform pii_internal.masking_check_view_name(tbl, old.view_name, view_name);
  end if;
  if old.relid is not null and old.view_name <> view_name then
    -- The table was renamed: its view follows.
    execute pg_catalog.format('drop view if exists masked.%I', old.view_name);
    exists_ := false;
  end if;

  action := pii_internal.masking_write_view(view_name, sql_, exists_, old.saved_acl);
  execute pg_catalog.format('grant select on masked.%I to pii_masked_reader', view_name);
  perform pii_internal.masking_comment_view(tbl, view_name);
  insert into pii.masked_views as m (relid, view_name, definition)
  values (tbl, masking_rebuild_one.view_name, sql_)
  on conflict (relid) do update set view_name = excluded.view_name, definition = excluded.definition, saved_acl = null, built_at = pg_catalog.now();
end
$$;
comment on function pii_internal.masking_rebuild_one(regclass) is 'Internal. Step of masking_rebuild: (re)builds, leaves or drops one table''s masked view; raises on failure.';

create or replace function pii_internal.masking_rebuild(tbls regclass[], strict boolean)
returns table (table_name text, view_name text, action text)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbl regclass;
  one record;
begin
  perform pg_catalog.set_config('lethe.masking_rebuild', 'on', true);
  for tbl in
    select r.relid from (
      select t.relid from pii.tables t where tbls is null or t.relid = any (tbls)
      union
      select m.relid from pii.masked_views m where tbls is null or m.relid = any (tbls)) r
    order by r.relid::oid
  loop
    table_name := coalesce(pii_internal.qualified_name(tbl), tbl::oid::text);
    -- Named in the result even when the rebuild fails.
    view_name := coalesce(pii_internal.masked_view_name(tbl), (select m.view_name from pii.masked_views m where m.relid = tbl));
    action := null;
    begin
      one := pii_internal.masking_rebuild_one(tbl);
      view_name := one.view_name;
      action := one.action;
      return next;
    exception when others then
      if strict then
        raise;
      end if;
      -- Fail closed: without a correct view, no view.
      begin
        perform pii_internal.drop_masked_view(tbl);
        raise warning 'Lethe: could not rebuild the masked view of %: % (the view was dropped; fix the cause, then select * from pii.apply_masking())', table_name, sqlerrm;
        action := 'dropped: ' || sqlerrm;
      exception when others then
        raise warning 'Lethe: could not rebuild the masked view of % (%), nor drop it (%)', table_name, action, sqlerrm;
        action := 'failed: ' || sqlerrm;
      end;
      return next;
    end;
  end loop;
  perform pg_catalog.set_config('lethe.masking_rebuild', 'off', true);
end
$$;
comment on function pii_internal.masking_rebuild(regclass[], boolean) is 'Internal. (Re)builds masked views whose definition changed; strict raises on failure, otherwise warns and drops the view.';

create or replace function pii.apply_masking()
returns table (table_name text, view_name text, action text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query select r.table_name, r.view_name, r.action from pii_internal.masking_rebuild(null, true) r;
  perform pii_internal.write_audit('apply_masking', null, pg_catalog.jsonb_build_object(
    'views', (select pg_catalog.count(*) from pii.masked_views)));
end
$$;
comment on function pii.apply_masking() is
$$(Re)builds schema masked: one view per registered table, same name and columns, registered columns masked
by their mask strategy, unclassified columns hidden while pii.settings.privacy_by_default is on. Views whose
definition did not change are left alone. Registry changes and (with event triggers) DDL call it for you;
call it after DDL on registered tables when Lethe was installed without superuser.
Example: select * from pii.apply_masking();$$;

---------------------------------------------------------------------------------------
-- Classification helpers

create or replace function pii.mark_not_pii(tbl regclass, variadic columns name[]) returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  col name;
  n integer := 0;
begin
  if columns is null or pg_catalog.cardinality(columns) = 0 then
    raise exception 'no column given' using errcode = '22004';
  end if;
  foreach col in array columns loop
    perform pii.register_column(tbl, col, 'keep', 'clear', 'not_pii');
    n := n + 1;
  end loop;
  return n;
end
$$;
comment on function pii.mark_not_pii(regclass, name[]) is
$$Classifies columns of a registered table as not personal data (ids, totals, timestamps): masked views show
them, erasure keeps them. Same as pii.register_column(tbl, col, erase => 'keep', mask => 'clear', category => 'not_pii').
Example: select pii.mark_not_pii('app.orders', 'id', 'total', 'ordered_at');$$;

create or replace function pii.unclassified_columns()
returns table (table_name text, column_name name, data_type text, shown boolean, suggestion text)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.qualified_name(t.relid), a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
         not s.privacy_by_default,
         pg_catalog.format('select pii.mark_not_pii(%L, %L);  -- or: select pii.register_column(%L, %L, ''null'', ''hide'');',
                           pii_internal.qualified_name(t.relid), a.attname, pii_internal.qualified_name(t.relid), a.attname)
  from pii.tables t
  join pg_catalog.pg_attribute a on a.attrelid = t.relid and a.attnum > 0 and not a.attisdropped
  cross join pii.settings s
  where not exists (select from pii.columns c where c.relid = t.relid and c.attnum = a.attnum)
    and not pii_internal.is_link_column(t.relid, a.attnum)
  order by 1, a.attnum
$$;
comment on function pii.unclassified_columns() is
$$Columns of registered tables that have no rule: hidden (NULL) in masked views while privacy by default is on.
Each row suggests how to classify it. Example: select * from pii.unclassified_columns();$$;

---------------------------------------------------------------------------------------
-- Keeping views current: registry triggers.

create or replace function pii_internal.masking_registry_changed() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbls regclass[];
begin
  if tg_table_name in ('subject_table', 'settings') then
    tbls := null;  -- key_is_pii and privacy by default concern every view
  elsif tg_table_name = 'tables' then
    -- A child's registration changes which of its parent's columns is a link column.
    if tg_op in ('INSERT', 'UPDATE') then
      select pg_catalog.array_agg(x) into tbls from (
        select n.relid as x from lethe_new n union select n.parent_relid from lethe_new n where n.parent_relid is not null) s;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
      select tbls || pg_catalog.array_agg(x) into tbls from (
        select o.relid as x from lethe_old o union select o.parent_relid from lethe_old o where o.parent_relid is not null) s;
    end if;
  else
    if tg_op in ('INSERT', 'UPDATE') then
      select pg_catalog.array_agg(distinct n.relid) into tbls from lethe_new n;
    end if;
    if tg_op in ('DELETE', 'UPDATE') then
      select tbls || pg_catalog.array_agg(distinct o.relid) into tbls from lethe_old o;
    end if;
  end if;
  if tg_table_name in ('tables', 'columns') and coalesce(pg_catalog.cardinality(tbls), 0) = 0 then
    return null;
  end if;
  perform from pii_internal.masking_rebuild(tbls, true);
  return null;
end
$$;
comment on function pii_internal.masking_registry_changed() is 'Internal. Statement trigger on the registry: rebuilds the masked views a registry change concerns.';

create or replace trigger masking_columns_insert after insert on pii.columns referencing new table as lethe_new
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_columns_update after update on pii.columns referencing old table as lethe_old new table as lethe_new
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_columns_delete after delete on pii.columns referencing old table as lethe_old
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_tables_insert after insert on pii.tables referencing new table as lethe_new
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_tables_update after update on pii.tables referencing old table as lethe_old new table as lethe_new
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_tables_delete after delete on pii.tables referencing old table as lethe_old
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_subject_table_change after insert or update or delete on pii.subject_table
  for each statement execute function pii_internal.masking_registry_changed();
create or replace trigger masking_settings_change after update of privacy_by_default on pii.settings
  for each statement execute function pii_internal.masking_registry_changed();

---------------------------------------------------------------------------------------
-- Keeping views current: DDL (event triggers, when the installing role may create them).
--
-- A view depends on the columns it reads, so DROP COLUMN, ALTER COLUMN TYPE and DROP
-- TABLE on a registered table would fail because of its masked view. At
-- ddl_command_start the views of the registered tables the command names are dropped
-- (only the command's text is known then; a false match costs a rebuild), and at
-- ddl_command_end every view the command concerns or that is missing is rebuilt. A
-- failed rebuild warns, never fails the user's command. CREATE TRIGGER and other tags
-- (Lethe's guard triggers among them) do not fire these at all.

-- The (schema, name) pairs a command's text can name, identifier by identifier (quoted ones
-- as written, others folded to lower case; schema NULL when unqualified). At
-- ddl_command_start only the text is known; this keeps customers_archive or other.customers
-- from matching app.customers. Words that are not names only cost a rebuild (ddl_command_end
-- rebuilds every view dropped here whose table still exists).
create or replace function pii_internal.named_relations(command text)
returns table (schema_name text, rel_name text)
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  with tokens as (
    select m[1] as q1, m[2] as u1, m[3] as q2, m[4] as u2
    from pg_catalog.regexp_matches(command,
      '(?:("(?:[^"]|"")+")|([[:alpha:]_][[:alnum:]_$]*))(?:[[:space:]]*\.[[:space:]]*(?:("(?:[^"]|"")+")|([[:alpha:]_][[:alnum:]_$]*)))?', 'g') m
  ),
  parts as (
    select coalesce(pg_catalog.replace(pg_catalog.substr(q1, 2, pg_catalog.length(q1) - 2), '""', '"'), pg_catalog.lower(u1)) as a,
           coalesce(pg_catalog.replace(pg_catalog.substr(q2, 2, pg_catalog.length(q2) - 2), '""', '"'), pg_catalog.lower(u2)) as b
    from tokens
  )
  select case when b is null then null else a end, coalesce(b, a) from parts
$$;
comment on function pii_internal.named_relations(text) is 'Internal. The relation names (schema or NULL, name) a command text can refer to, as PostgreSQL would read its identifiers.';

create or replace function pii_internal.masking_ddl_start() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  q text;
  v record;
begin
  if pg_catalog.current_setting('lethe.masking_rebuild', true) = 'on' then
    return;
  end if;
  q := pg_catalog.lower(pg_catalog.current_query());
  -- Of ALTER TABLE, only dropping a column or changing its type is blocked by a view.
  if tg_tag = 'ALTER TABLE' and q !~ '(drop|type)' then
    return;
  end if;
  -- Only for someone who may alter the table (its owner's role): a command that is going to
  -- fail anyway must not lock a masked view (ddl_command_start runs before any check).
  for v in
    select m.relid, m.view_name from pii.masked_views m join pg_catalog.pg_class c on c.oid = m.relid
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where exists (select from pii_internal.named_relations(pg_catalog.current_query()) r
                  where r.rel_name = c.relname::text and (r.schema_name is null or r.schema_name = n.nspname::text))
      and pg_catalog.pg_has_role(session_user, c.relowner, 'USAGE')
  loop
    begin
      update pii.masked_views m
      set definition = '',
          saved_acl = coalesce(m.saved_acl, (select c.relacl from pg_catalog.pg_class c
                                             where c.relnamespace = 'masked'::regnamespace and c.relname = v.view_name))
      where m.relid = v.relid;
      execute pg_catalog.format('drop view if exists masked.%I', v.view_name);
    exception when others then
      raise warning 'Lethe: could not drop masked.% before %: %', v.view_name, tg_tag, sqlerrm;
    end;
  end loop;
exception when others then
  raise warning 'Lethe: masking event trigger (ddl_command_start) failed: %', sqlerrm;
end
$$;
comment on function pii_internal.masking_ddl_start() is 'Internal. Event trigger: drops the masked views a DROP TABLE / ALTER TABLE names, so view dependencies never block the command.';

create or replace function pii_internal.masking_ddl_end() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbls regclass[];
begin
  if pg_catalog.current_setting('lethe.masking_rebuild', true) = 'on' then
    return;
  end if;
  select pg_catalog.array_agg(distinct r.relid) into tbls
  from (
    select t.relid
    from pg_catalog.pg_event_trigger_ddl_commands() d
    join pii.tables t on t.relid = d.objid::regclass
    where d.classid = 'pg_catalog.pg_class'::regclass
    union all
    -- Views a ddl_command_start dropped, or that are missing for any reason.
    select m.relid from pii.masked_views m
    where m.definition = ''
       or not exists (select from pg_catalog.pg_class c where c.relnamespace = 'masked'::regnamespace and c.relname = m.view_name)
  ) r;
  if tbls is null then
    return;
  end if;
  perform from pii_internal.masking_rebuild(tbls, false);
exception when others then
  raise warning 'Lethe: could not rebuild masked views after %: % (call select * from pii.apply_masking())', tg_tag, sqlerrm;
end
$$;
comment on function pii_internal.masking_ddl_end() is 'Internal. Event trigger: rebuilds the masked views of registered tables an ALTER TABLE changed (columns added, dropped, renamed, retyped; table renamed or moved), and any view a ddl_command_start dropped.';

create or replace function pii_internal.masking_sql_drop() returns event_trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if pg_catalog.current_setting('lethe.masking_rebuild', true) = 'on' then
    return;
  end if;
  -- A registered table was dropped: forget its view (gone with it, or dropped at start).
  delete from pii.masked_views m
  using pg_catalog.pg_event_trigger_dropped_objects() o
  where o.object_type = 'table' and o.objid = m.relid::oid;
  -- Its registry rows are forgotten by pii_internal.forget_dropped_tables (30_registry).
exception when others then
  raise warning 'Lethe: masking event trigger (sql_drop) failed: %', sqlerrm;
end
$$;
comment on function pii_internal.masking_sql_drop() is 'Internal. Event trigger: forgets the masked views of dropped tables.';

do $$
begin
  -- Repeatable: re-created on every apply of this file.
  drop event trigger if exists lethe_masking_ddl_start;
  drop event trigger if exists lethe_masking_ddl_end;
  drop event trigger if exists lethe_masking_sql_drop;
  create event trigger lethe_masking_ddl_start on ddl_command_start
    when tag in ('ALTER TABLE', 'DROP TABLE') execute function pii_internal.masking_ddl_start();
  -- Not CREATE TABLE: a new partition needs no rebuild (the parent's view reads it), and
  -- every CREATE TABLE in the database (temporary tables included) would pay for a call.
  create event trigger lethe_masking_ddl_end on ddl_command_end
    when tag in ('ALTER TABLE', 'DROP TABLE') execute function pii_internal.masking_ddl_end();
  create event trigger lethe_masking_sql_drop on sql_drop
    when tag in ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED') execute function pii_internal.masking_sql_drop();
exception when insufficient_privilege then
  raise notice 'Lethe: % may not create event triggers (superuser only): masked views will not follow DDL on registered tables by themselves. After ALTER TABLE / DROP TABLE / new columns on a registered table, run: select * from pii.apply_masking();', current_user;
end
$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.mask_email(text), pii.mask_partial(text, integer, integer), pii.mask_year(date),
  pii.mask_year(timestamp), pii.mask_year(timestamptz) to pii_admin, pii_operator, pii_auditor, pii_dispatcher;
grant execute on function pii.mask_hash(text), pii.apply_masking(), pii.mark_not_pii(regclass, name[]),
  pii.unclassified_columns() to pii_admin;
