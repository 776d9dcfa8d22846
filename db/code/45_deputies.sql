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
-- Creating a function owned by another role needs Lethe's owner to be able to SET ROLE to it
-- (a member of the table owner's role; a superuser is) and the owner to have CREATE on the
-- schema at that moment: Lethe grants it and revokes it in the same transaction, so no
-- other session ever sees it.

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
begin
  select p.proowner::regrole, p.oid::regprocedure,
         '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')' = args and p.proconfig @> array['debug_print_plan=off']
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
  execute pg_catalog.format($f$
    create function pii_internal.%I(statement text, returns_keys boolean, keys text[], scopes text[],
                                    inner_key bytea, outer_key bytea, new_rows text[],
                                    held_keys text[], held_tables oid[], held_scopes text[],
                                    out n bigint, out found_keys text[], out found_scopes text[])
    language plpgsql security definer
    set search_path = pg_catalog, pg_temp
    set debug_print_plan = off
    as $body$
    begin
      if returns_keys then
        execute statement into found_keys, found_scopes using keys, scopes, inner_key, outer_key, new_rows, held_keys, held_tables, held_scopes;
      else
        execute statement using keys, scopes, inner_key, outer_key, new_rows, held_keys, held_tables, held_scopes;
        get diagnostics n = row_count;
      end if;
    end
    $body$
  $f$, fname);
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
  select m.rel, c.relowner::regrole as member_owner, p.relowner::regrole as table_owner into other
  from pii_internal.guarded_tree(tbl) m (rel)
  join pg_catalog.pg_class c on c.oid = m.rel
  join pg_catalog.pg_class p on p.oid = tbl
  where c.relowner <> p.relowner
  order by m.rel::oid
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
  hashes boolean := pg_catalog.strpos(statement, '$3') > 0;
  deputy text := pii_internal.deputy((select c.relowner::regrole from pg_catalog.pg_class c where c.oid = tbl));
begin
  perform pii_internal.check_tree_owner(tbl);
  if hashes then
    select * into pk from pii_internal.pseudonym_key;
  end if;
  execute pg_catalog.format('select d.n, d.found_keys, d.found_scopes from %s($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) d', deputy)
    into n, found_keys, found_scopes
    using statement, returns_keys, keys, scopes, pk.inner_key, pk.outer_key, new_rows, held_keys, held_tables, held_scopes;
end
$$;
comment on function pii_internal.as_owner(regclass, text, boolean, text[], text[], text[], text[], oid[], text[]) is 'Internal. Runs one of Lethe''s statements on a table through its owner''s deputy: the row count, or the (keys, scopes) it selected.';

-- The deputies left by owners whose tables are no longer registered are harmless (they run
-- as their owner, for Lethe's owner only); DROP OWNED BY removes them with the role.

revoke execute on all functions in schema pii, pii_internal from public;
