-- Repeatable code: deputies, so that Lethe's statements on application tables run with the
-- table owner's rights, never with Lethe's (issue 11, docs/security.md "Table owners").
--
-- Everything a table's owner can attach to the table (triggers, rules, domain and table
-- CHECKs, index and generated-column expressions, defaults, casts on their types) runs as
-- whoever executes the statement that fires it. Lethe's functions are SECURITY DEFINER
-- (the installer, often a superuser), and PostgreSQL forbids SET ROLE inside them (42501).
-- So each table owner gets one deputy: pii_internal.deputy_<owner oid>, a SECURITY DEFINER
-- function OWNED BY THE TABLE OWNER that executes a statement Lethe built (bound to the
-- subjects' keys) and returns its row count or the keys it selected. EXECUTE is granted to
-- Lethe's owner only; the table owner may call it too, which gains them nothing (it runs as
-- them). Its statements may bind the pseudonym key, so their plans are never printed
-- (debug_print_plan = off: a bound value is a constant of the plan). Hashing, tombstones, the install key and Lethe's tables stay in Lethe's own context
-- and touch only Lethe's tables and pg_catalog functions on text and bytea.
--
-- The owner's code also runs inside Lethe's session: it can change the session's settings
-- for every statement Lethe (and the caller) runs afterwards. A function's SET clause does
-- not stop that (a plain SET made inside a function outlives it; SET LOCAL of a setting the
-- function does not pin lasts until the transaction ends), and a deferred constraint trigger
-- queued by the statement would fire at the caller's COMMIT with the caller's rights. So a
-- deputy fires the deferred constraint triggers before it returns (as the owner), then
-- compares every setting the owner may change with its value before the statement and
-- returns the first that differs: pii_internal.as_owner raises (42501), and the error rolls
-- the change back with the statement.
--
-- Creating a function owned by another role needs Lethe's owner to be able to SET ROLE to it
-- (a member of the table owner's role; a superuser is) and the owner to have CREATE on the
-- schema at that moment: Lethe grants it and revokes it in the same transaction, so no
-- other session ever sees it.

-- The settings a table owner's code may change (a non-superuser may SET every setting of
-- context user, and a superuser-context one it was granted SET on), and Lethe's own lethe.*
-- settings. The deputy evaluates an array of their values before and after its statement;
-- the list is fixed when the deputy is made (a deputy of an earlier version is made again).
create or replace function pii_internal.owner_settable_settings(owner regrole) returns text[]
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  names text[];
begin
  if pg_catalog.current_setting('server_version_num')::integer >= 150000 then
    execute $q$select pg_catalog.array_agg(s.name::text order by s.name) from pg_catalog.pg_settings s
               where s.context operator(pg_catalog.=) 'user'
                  or (s.context operator(pg_catalog.=) 'superuser' and pg_catalog.has_parameter_privilege($1, s.name, 'SET'))$q$
      into names using owner::oid;
  else
    select pg_catalog.array_agg(s.name::text order by s.name) into names from pg_catalog.pg_settings s
    where s.context operator(pg_catalog.=) 'user'
       or (s.context operator(pg_catalog.=) 'superuser' and (select r.rolsuper from pg_catalog.pg_roles r where r.oid operator(pg_catalog.=) owner::oid));
  end if;
  return names || array['lethe.masking_rebuild', 'lethe.vault_kek', 'lethe.vault_new_kek'];
end
$$;
comment on function pii_internal.owner_settable_settings(regrole) is 'Internal. The settings a deputy checks: every one the table owner may change, and Lethe''s lethe.* settings.';

create or replace function pii_internal.deputy(owner regrole) returns text
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  fname name := 'deputy_' || owner::oid;
  existing regrole;
  existing_fn regprocedure;
  current_shape boolean;
  args constant text := '(text, boolean, text[], text[], bytea, bytea, text[], text[], oid[], text[])';
  -- Deputies made by an earlier version lack the settings check: made again.
  version constant text := 'lethe deputy: settings checked, deferred application triggers fired';
  names text[];
  settings text;
begin
  -- The version is in the body's first line: substr reads only the start of prosrc (a
  -- compressed, out-of-line value of ~30 kB otherwise decompressed whole on every call).
  select p.proowner::regrole, p.oid::regprocedure,
         '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')' = args and p.proconfig @> array['debug_print_plan=off']
           and pg_catalog.strpos(pg_catalog.substr(p.prosrc, 1, 200), version) > 0
    into existing, existing_fn, current_shape
  from pg_catalog.pg_proc p
  where p.pronamespace = 'pii_internal'::regnamespace and p.proname = fname;
  if existing = owner and current_shape then
    return pg_catalog.format('pii_internal.%I', fname);
  end if;
  -- Only when creating: two sessions creating the same deputy would collide in pg_proc (and
  -- a lock held on every call would serialize all erasures until commit).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('lethe.deputy'), owner::oid::integer);
  select p.proowner::regrole, p.oid::regprocedure,
         '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')' = args and p.proconfig @> array['debug_print_plan=off']
           and pg_catalog.strpos(pg_catalog.substr(p.prosrc, 1, 200), version) > 0
    into existing, existing_fn, current_shape
  from pg_catalog.pg_proc p
  where p.pronamespace = 'pii_internal'::regnamespace and p.proname = fname;
  if existing = owner and current_shape then
    return pg_catalog.format('pii_internal.%I', fname);
  end if;
  if not pg_catalog.pg_has_role(current_user, owner, 'MEMBER') then
    raise exception 'Lethe''s owner role % is not a member of role %, which owns a registered table: Lethe runs its statements on a table with its owner''s rights', current_user, owner
      using errcode = '42501', hint = pg_catalog.format('grant %I to %I;', owner, current_user);
  end if;
  if existing is not null then
    -- A role dropped without DROP OWNED left it behind and its oid came back, or it has an
    -- older version's parameters or settings: start over.
    execute pg_catalog.format('drop function %s', existing_fn);
  end if;
  names := pii_internal.owner_settable_settings(owner);
  select pg_catalog.format('array[%s]::text[]',
           pg_catalog.string_agg(pg_catalog.format('pg_catalog.current_setting(%L, true)', n), ', '))
    into settings from pg_catalog.unnest(names) n;
  -- After the statement the owner's code may have changed search_path: everything the
  -- deputy evaluates from then on is schema-qualified, operators too.
  execute pg_catalog.format($f$
    create function pii_internal.%I(statement text, returns_keys boolean, keys text[], scopes text[],
                                    inner_key bytea, outer_key bytea, new_rows text[],
                                    held_keys text[], held_tables oid[], held_scopes text[],
                                    out n bigint, out found_keys text[], out found_scopes text[],
                                    out changed_setting text)
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
    set debug_print_plan = off
    as $body$
    -- %s
    declare
      before constant text[] := %s;
      after text[];
      deferred record;
    begin
      if returns_keys then
        execute statement into found_keys, found_scopes using keys, scopes, inner_key, outer_key, new_rows, held_keys, held_tables, held_scopes;
      else
        execute statement using keys, scopes, inner_key, outer_key, new_rows, held_keys, held_tables, held_scopes;
        get diagnostics n = row_count;
      end if;
      -- Deferred constraint triggers the statement queued fire now, as the owner, not at the
      -- caller's COMMIT as the caller (foreign keys check as their tables' owners anyway).
      -- Lethe's own (the plan cache's build at commit) stay Lethe's: no other role can create
      -- one in its schemas, and the owner may not even name them.
      for deferred in
        select pg_catalog.format('%%I.%%I', ns.nspname, k.conname) as name, k.condeferred
        from pg_catalog.pg_constraint k join pg_catalog.pg_namespace ns on ns.oid operator(pg_catalog.=) k.connamespace
        where k.contype operator(pg_catalog.=) 't' and k.condeferrable
          and ns.nspname operator(pg_catalog.<>) all (array['pii', 'pii_internal', 'masked'])
      loop
        execute pg_catalog.format('set constraints %%s immediate', deferred.name);
        if deferred.condeferred then
          execute pg_catalog.format('set constraints %%s deferred', deferred.name);
        end if;
      end loop;
      after := %s;
      if not (before operator(pg_catalog.=) after) then
        for i in 1 .. pg_catalog.array_length(before, 1) loop
          if not (array[before[i]] operator(pg_catalog.=) array[after[i]]) then
            changed_setting := (%L::text[])[i];
            return;
          end if;
        end loop;
      end if;
    end
    $body$
  $f$, fname, version, settings, settings, names);
  execute pg_catalog.format('comment on function pii_internal.%I%s is %L', fname, args,
    pg_catalog.format('Internal. Lethe''s deputy for tables owned by %s: runs Lethe''s statements on them with their owner''s rights (EXECUTE: Lethe''s owner only).', owner));
  execute pg_catalog.format('revoke all on function pii_internal.%I%s from public', fname, args);
  execute pg_catalog.format('grant create on schema pii_internal to %I', owner);
  begin
    execute pg_catalog.format('alter function pii_internal.%I%s owner to %I', fname, args, owner);
  exception when insufficient_privilege then
    raise exception 'Lethe''s owner role % cannot make role % own its deputy function (SET ROLE to % is not allowed)', current_user, owner, owner
      using errcode = '42501', hint = pg_catalog.format('grant %I to %I with set true;', owner, current_user);
  end;
  execute pg_catalog.format('revoke create on schema pii_internal from %I', owner);
  execute pg_catalog.format('grant execute on function pii_internal.%I%s to %I', fname, args, current_user);
  return pg_catalog.format('pii_internal.%I', fname);
end
$$;
comment on function pii_internal.deputy(regrole) is 'Internal. The deputy function of a table owner (created on first use): runs Lethe''s statements with that owner''s rights.';

-- A statement on a partitioned table or an inheritance parent also writes its partitions and
-- children, and their code (triggers, checks) runs with the deputy's rights: the parent
-- owner's. A member owned by another role would run its owner's code with more than that
-- owner's rights, so Lethe refuses to act on such a tree (at registration, and on every
-- statement: members can be attached or given away later).
create or replace function pii_internal.check_tree_owner(tbl regclass) returns void
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  other record;
begin
  -- Most tables have no partition or child (relhassubclass stays true once one was added):
  -- nothing to walk.
  if not (select c.relhassubclass from pg_catalog.pg_class c where c.oid operator(pg_catalog.=) tbl) then
    return;
  end if;
  -- pii_internal.guarded_tree's walk, inlined (this runs before every statement Lethe runs
  -- on a partitioned table: one query, not a set-returning PL/pgSQL call per statement).
  with recursive down (relid) as (
    select tbl::oid
    union
    select i.inhrelid from pg_catalog.pg_inherits i join down on i.inhparent operator(pg_catalog.=) down.relid
    where not exists (select from pii.tables t where t.relid::oid operator(pg_catalog.=) i.inhrelid)
  )
  select m.relid::regclass as rel, c.relowner::regrole as member_owner, p.relowner::regrole as table_owner into other
  from down m
  join pg_catalog.pg_class c on c.oid operator(pg_catalog.=) m.relid
  join pg_catalog.pg_class p on p.oid operator(pg_catalog.=) tbl
  where c.relowner operator(pg_catalog.<>) p.relowner
  order by m.relid
  limit 1;
  if other.rel is not null then
    raise exception 'table % (in the tree of %) is owned by %, not by %: Lethe''s statements on % would run its code with %''s rights',
      pii_internal.qualified_name(other.rel), pii_internal.qualified_name(tbl), other.member_owner, other.table_owner,
      pii_internal.qualified_name(tbl), other.table_owner
      using errcode = '42501', hint = pg_catalog.format('alter table %s owner to %I;', pii_internal.qualified_name(other.rel), other.table_owner);
  end if;
end
$$;
comment on function pii_internal.check_tree_owner(regclass) is 'Internal. Refuses (42501) a table whose partitions or inheritance children have another owner: Lethe writes them with the table owner''s rights.';

-- The vault's external KEK (and the next one, for a rotation) arrive in session settings,
-- lethe.vault_kek and lethe.vault_new_kek (93_vault.sql), which any code running in the
-- session can read, the owner's code a deputy runs included (pii.tokenize casts keys through
-- the key type's owner). Before any owner's code runs, Lethe moves them into a temporary
-- table of its own (owned by Lethe's owner: no other role may read it; refused if the name
-- is taken by another role's table) and clears the settings. pii_internal.session_kek reads
-- them back from either place.
create or replace function pii_internal.session_kek_table() returns boolean
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  tbl_owner oid := (select c.relowner from pg_catalog.pg_class c
                    where c.oid operator(pg_catalog.=) pg_catalog.to_regclass('pg_temp.lethe_session_keks'));
begin
  if tbl_owner is not null and tbl_owner operator(pg_catalog.<>) current_user::pg_catalog.regrole::oid then
    raise exception 'pg_temp.lethe_session_keks belongs to another role: Lethe keeps the session''s KEKs there'
      using errcode = '42501', hint = 'Drop that temporary table, or use a new session.';
  end if;
  return tbl_owner is not null;
end
$$;
comment on function pii_internal.session_kek_table() is 'Internal. Whether this session has Lethe''s table of KEKs taken from its settings (42501 if another role made one of that name).';

create or replace function pii_internal.stash_session_keks() returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  held text[] := (select pg_catalog.array_agg(n) from pg_catalog.unnest(array['lethe.vault_kek', 'lethe.vault_new_kek']) n
                  where coalesce(pg_catalog.current_setting(n, true), '') operator(pg_catalog.<>) '');
begin
  if held is null then
    return;
  end if;
  if not pii_internal.session_kek_table() then
    create temporary table lethe_session_keks (name text primary key, value text not null);
  end if;
  insert into pg_temp.lethe_session_keks as k (name, value)
  select n, pg_catalog.current_setting(n) from pg_catalog.unnest(held) n
  on conflict (name) do update set value = excluded.value;
  perform pg_catalog.set_config(n, '', false) from pg_catalog.unnest(held) n;
end
$$;
comment on function pii_internal.stash_session_keks() is 'Internal. Moves the session''s lethe.vault_kek / lethe.vault_new_kek settings into a temporary table only Lethe''s owner may read, before any table owner''s code runs in the session.';

create or replace function pii_internal.session_kek(setting text) returns text
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.stash_session_keks();
  if not pii_internal.session_kek_table() then
    return null;
  end if;
  return (select k.value from pg_temp.lethe_session_keks k where k.name operator(pg_catalog.=) setting);
end
$$;
comment on function pii_internal.session_kek(text) is 'Internal. The value the session brought in a lethe.vault_* setting (its startup options), or NULL.';

-- Runs a statement on tbl with its owner's rights: $1 keys, $2 scopes, $3/$4 the pseudonym
-- key (only bound when the statement computes or tests pseudonyms; never the install key: the
-- owner's code runs inside the statement and a plan can show its parameters, e.g. with
-- debug_print_plan), $5 rows as text of the table's row type (guards, or values to look for),
-- $6/$7/$8 the (key, table oid, scope) pairs a legal hold keeps (pii_internal.held_pairs), or,
-- for a referenced table's capture and statement, $6/$8 the keys and scopes of subjects erased
-- before whose rows also reference its rows (pii_internal.erased_co_owners).
-- returns_keys: the statement selects (keys text[], scopes text[]); otherwise its row count.
create or replace function pii_internal.as_owner(tbl regclass, statement text, returns_keys boolean,
                                                 keys text[], scopes text[], new_rows text[] default null,
                                                 held_keys text[] default null, held_tables oid[] default null,
                                                 held_scopes text[] default null,
                                                 out n bigint, out found_keys text[], out found_scopes text[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
set debug_print_plan = off
as $$
declare
  pk pii_internal.pseudonym_key;
  changed_setting text;
  hashes boolean := pg_catalog.strpos(statement, '$3') > 0;
  owner pg_catalog.regrole := (select c.relowner::pg_catalog.regrole from pg_catalog.pg_class c where c.oid operator(pg_catalog.=) tbl);
  deputy text := pii_internal.deputy(owner);
begin
  perform pii_internal.stash_session_keks();
  perform pii_internal.check_tree_owner(tbl);
  if hashes then
    select * into pk from pii_internal.pseudonym_key;
  end if;
  execute pg_catalog.format('select d.n, d.found_keys, d.found_scopes, d.changed_setting from %s($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) d', deputy)
    into n, found_keys, found_scopes, changed_setting
    using statement, returns_keys, keys, scopes, pk.inner_key, pk.outer_key, new_rows, held_keys, held_tables, held_scopes;
  -- The owner's code changed a setting (search_path, say): nothing more runs under it (not
  -- even an unqualified type name here); the error rolls it back.
  if changed_setting is not null then
    raise exception 'code of role % (a trigger, rule, check, default or policy of %) changed the setting % during a statement of Lethe',
      owner, pii_internal.qualified_name(tbl), changed_setting
      using errcode = '42501',
            hint = 'Code on registered tables must not change session settings (set_config, SET): the change would apply to Lethe''s next statements and to the caller''s session.';
  end if;
end
$$;
comment on function pii_internal.as_owner(regclass, text, boolean, text[], text[], text[], text[], oid[], text[]) is 'Internal. Runs one of Lethe''s statements on a table through its owner''s deputy: the row count, or the (keys, scopes) it selected.';

-- The deputies left by owners whose tables are no longer registered are harmless (they run
-- as their owner, for Lethe's owner only); DROP OWNED BY removes them with the role.

revoke execute on all functions in schema pii, pii_internal from public;
