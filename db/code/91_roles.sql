-- Repeatable code: group role membership (grant_role, revoke_role) and security_lint.

-- Granting Lethe's group roles to logins (F13, F20), and a security lint that finds what
-- would let a masked reader around the masks: PUBLIC grants on registered tables, readers
-- with other privileges, missing views, event triggers that are not there.
--
-- The five group roles are cluster-wide (so are the memberships granted here): a login
-- made a masked reader is one in every database of the cluster where Lethe is installed.
-- Reading masked views needs no privilege on base tables: a view reads its tables with
-- its owner's rights, and the masks are built-in functions (EXECUTE for everyone).

-- Lethe's group roles, named once here (0001_schemas_roles_secret.sql created them).
create or replace function pii_internal.group_roles() returns text[]
language sql immutable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select array['pii_admin', 'pii_operator', 'pii_masked_reader', 'pii_auditor', 'pii_dispatcher']
$$;
comment on function pii_internal.group_roles() is 'Internal. The names of Lethe''s group roles.';

create or replace function pii_internal.check_group_role(group_role text) returns void
language plpgsql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if group_role is null then
    raise exception 'group role must not be NULL' using errcode = '22004';
  end if;
  if not (group_role operator(pg_catalog.=) any (pii_internal.group_roles())) then
    raise exception '"%" is not a Lethe group role', group_role using errcode = '22023',
      hint = 'Expected one of: ' || pg_catalog.array_to_string(pii_internal.group_roles(), ', ') || '.';
  end if;
end
$$;
comment on function pii_internal.check_group_role(text) is 'Internal. Raises 22023 unless the name is one of the five Lethe group roles.';

-- The role a grant is for: it must exist, and must not be a group role of Lethe, a
-- predefined role or PUBLIC.
create or replace function pii_internal.check_member_role(login_role name) returns pg_catalog.pg_roles
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  r pg_catalog.pg_roles;
begin
  if login_role is null then
    raise exception 'role must not be NULL' using errcode = '22004';
  end if;
  select * into r from pg_catalog.pg_roles x where x.rolname = login_role;
  if r.oid is null then
    raise exception 'role "%" does not exist', login_role using errcode = '42704',
      hint = 'Create it first, e.g. create role support_jane login password ''…'';';
  end if;
  if login_role::text operator(pg_catalog.=) any (pii_internal.group_roles()) then
    raise exception '"%" is a Lethe group role: grant group roles to logins (or to your own groups), not to each other', login_role
      using errcode = '22023';
  end if;
  if login_role like 'pg\_%' then
    raise exception '"%" is a predefined role', login_role using errcode = '22023';
  end if;
  return r;
end
$$;
comment on function pii_internal.check_member_role(name) is 'Internal. The role a Lethe group role is granted to: must exist (42704), not be a Lethe group or predefined role (22023).';

-- What lets a role around the masked views, whatever Lethe grants it: role attributes
-- (SUPERUSER, BYPASSRLS, CREATEROLE: before PostgreSQL 16 a CREATEROLE role grants itself
-- any non-superuser role, pg_read_all_data included), membership, direct or inherited, in
-- the predefined roles that read or write every table or the server's files, and privileges
-- on registered tables. pii.grant_role refuses such masked readers; pii.security_lint
-- reports existing ones (its per-table rows say which tables a reader can read).
create or replace function pii_internal.reader_escapes(member oid)
returns table (reads_tables boolean, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select false, 'is a superuser or bypasses row level security: masking cannot restrict it',
         pg_catalog.format('alter role %I nosuperuser nobypassrls;', r.rolname)
  from pg_catalog.pg_roles r where r.oid = member and (r.rolsuper or r.rolbypassrls)
  union all
  select false, 'has CREATEROLE: it can create roles and hand out their privileges (pg_read_all_data before PostgreSQL 16)',
         pg_catalog.format('alter role %I nocreaterole;', r.rolname)
  from pg_catalog.pg_roles r where r.oid = member and r.rolcreaterole and not r.rolsuper
  union all
  select false, pg_catalog.format('is a member of %s (directly or through another role), which reads, writes or runs around the masks', p.rolname),
         pg_catalog.format('revoke %I from %I; -- or from the role it belongs to that has it', p.rolname, r.rolname)
  from pg_catalog.pg_roles r
  join pg_catalog.pg_roles p on p.rolname in ('pg_read_all_data', 'pg_write_all_data', 'pg_read_server_files',
                                              'pg_write_server_files', 'pg_execute_server_program')
  where r.oid = member and not r.rolsuper and pg_catalog.pg_has_role(r.oid, p.oid, 'MEMBER')
  union all
  select true, pg_catalog.format('can read registered tables directly (%s): the masked views do not restrict it there',
                                 pg_catalog.string_agg(pii_internal.qualified_name(t.relid), ', ' order by pii_internal.qualified_name(t.relid))),
         'Revoke those privileges (check PUBLIC and the roles it belongs to); select * from pii.security_lint() lists them.'
  from pii.tables t
  where exists (select from pg_catalog.pg_class c where c.oid = t.relid)
    and (pg_catalog.has_table_privilege(member, t.relid, 'SELECT')
         or pg_catalog.has_any_column_privilege(member, t.relid, 'SELECT'))
  having pg_catalog.count(*) > 0
$$;
comment on function pii_internal.reader_escapes(oid) is 'Internal. Why a role would read around the masked views (attributes, predefined roles, direct privileges on registered tables); no rows when none.';

create or replace function pii.grant_role(group_role text, login_role name) returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  r pg_catalog.pg_roles;
  problems text;
  hints text;
begin
  perform pii_internal.check_group_role(group_role);
  r := pii_internal.check_member_role(login_role);
  if pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER') and not (select x.rolsuper from pg_catalog.pg_roles x where x.rolname = session_user) then
    raise exception '% cannot grant Lethe roles to itself (or to a role it belongs to)', session_user using errcode = '42501',
      hint = 'Another administrator has to grant it.';
  end if;
  if group_role = 'pii_masked_reader' then
    select pg_catalog.string_agg(e.problem, '; '), pg_catalog.string_agg(e.hint, ' ') into problems, hints
    from pii_internal.reader_escapes(r.oid) e;
    if problems is not null then
      raise exception 'role "%" cannot be a masked reader: it %', login_role, problems
        using errcode = '22023', hint = hints;
    end if;
  end if;
  execute pg_catalog.format('grant %I to %I', group_role, login_role);
  perform pii_internal.write_audit('grant_role', null, pg_catalog.jsonb_build_object('group_role', group_role, 'role', login_role));
end
$$;
comment on function pii.grant_role(text, name) is
$$Grants one of Lethe's group roles (pii_admin, pii_operator, pii_masked_reader, pii_auditor, pii_dispatcher)
to a role. Unknown role: 42704; anything else than the five groups: 22023; granting to yourself: 42501;
pii_masked_reader for a role that would read around the masks (see pii.grant_masked_reader): 22023.
Audited. Example: select pii.grant_role('pii_operator', 'dpo_anna');$$;

create or replace function pii.revoke_role(group_role text, login_role name) returns boolean
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  r pg_catalog.pg_roles;
  was_member boolean;
begin
  perform pii_internal.check_group_role(group_role);
  r := pii_internal.check_member_role(login_role);
  select exists (select from pg_catalog.pg_auth_members m
                 where m.roleid = (select x.oid from pg_catalog.pg_roles x where x.rolname = group_role) and m.member = r.oid)
    into was_member;
  if not was_member then
    return false;
  end if;
  execute pg_catalog.format('revoke %I from %I', group_role, login_role);
  perform pii_internal.write_audit('revoke_role', null, pg_catalog.jsonb_build_object('group_role', group_role, 'role', login_role));
  return true;
end
$$;
comment on function pii.revoke_role(text, name) is
$$Revokes one of Lethe's group roles from a role; returns false when it was not a direct member. Audited.
Example: select pii.revoke_role('pii_operator', 'dpo_anna');$$;

create or replace function pii.grant_masked_reader(login_role name) returns void
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii.grant_role('pii_masked_reader', login_role)
$$;
comment on function pii.grant_masked_reader(name) is
$$Lets a role read the masked views (schema masked) and nothing else of Lethe. Refuses (22023) roles that would read
around the masks: SUPERUSER, BYPASSRLS, CREATEROLE, members of pg_read_all_data, pg_write_all_data,
pg_read_server_files, pg_write_server_files or pg_execute_server_program, and roles that can read a registered table.
Example: select pii.grant_masked_reader('support_jane');  -- then: alter role support_jane set search_path = masked;$$;

create or replace function pii.revoke_masked_reader(login_role name) returns boolean
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii.revoke_role('pii_masked_reader', login_role)
$$;
comment on function pii.revoke_masked_reader(name) is 'Takes the masked views away from a role; returns false when it was not a masked reader. Example: select pii.revoke_masked_reader(''support_jane'');';

-- What would let someone around the masks, and what keeps the masked views from being
-- current. Severity error: raw PII is reachable by someone it should not be.
-- The registered tables that still exist, with their names (security_lint's steps share it).
create or replace function pii_internal.lint_registered_tables()
returns table (relid regclass, name text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select t.relid, pii_internal.qualified_name(t.relid)
  from pii.tables t
  where exists (select from pg_catalog.pg_class c where c.oid = t.relid)
$$;
comment on function pii_internal.lint_registered_tables() is 'Internal. Registered tables that exist, with their qualified names.';

-- Members of pii_masked_reader through explicit grants (pg_has_role would count every
-- superuser as a member of everything), group roles left out. Roles are the cluster's, but
-- only those that may CONNECT to this database read its masked views: a reader of another
-- database is that database's concern.
create or replace function pii_internal.masked_readers()
returns table (oid oid, rolname name)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive members (oid) as (
    select m.member from pg_catalog.pg_auth_members m where m.roleid = 'pii_masked_reader'::regrole
    union
    select m.member from pg_catalog.pg_auth_members m join members on m.roleid = members.oid
  )
  select r.oid, r.rolname
  from pg_catalog.pg_roles r join members on members.oid = r.oid
  where not (r.rolname::text operator(pg_catalog.=) any (pii_internal.group_roles()))
    and pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'CONNECT')
$$;
comment on function pii_internal.masked_readers() is 'Internal. Login (and other) roles that are masked readers by explicit grants and may connect to this database.';

-- security_lint step: PUBLIC or a masked reader reaching a registered table directly.
create or replace function pii_internal.lint_registered_table_access()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with reg as (select * from pii_internal.lint_registered_tables()),
  readers as (select * from pii_internal.masked_readers())
  -- PUBLIC (everyone, masked readers included) may read or change a registered table.
  select 'error', reg.name,
         pg_catalog.format('PUBLIC has %s on this registered table: every role, masked readers included, reaches it', a.privilege_type),
         pg_catalog.format('revoke %s on %s from public;', a.privilege_type, reg.name)
  from reg
  join pg_catalog.pg_class c on c.oid = reg.relid
  cross join lateral pg_catalog.aclexplode(c.relacl) a
  where a.grantee = 0
  union all
  select 'error', reg.name || '.' || pg_catalog.quote_ident(att.attname),
         pg_catalog.format('PUBLIC has %s on this column of a registered table', a.privilege_type),
         pg_catalog.format('revoke %s (%I) on %s from public;', a.privilege_type, att.attname, reg.name)
  from reg
  join pg_catalog.pg_attribute att on att.attrelid = reg.relid and att.attnum > 0 and not att.attisdropped and att.attacl is not null
  cross join lateral pg_catalog.aclexplode(att.attacl) a
  where a.grantee = 0
  union all
  -- A masked reader reads a registered table some other way (its own grants, another role).
  select 'error', reg.name,
         pg_catalog.format('masked reader %I can read this registered table directly', rd.rolname),
         pg_catalog.format('revoke select on %s from %I; -- and from the roles it belongs to, or: select pii.revoke_masked_reader(%L);', reg.name, rd.rolname, rd.rolname)
  from reg cross join readers rd
  where pg_catalog.has_table_privilege(rd.oid, reg.relid, 'SELECT')
     or pg_catalog.has_any_column_privilege(rd.oid, reg.relid, 'SELECT')
$$;
comment on function pii_internal.lint_registered_table_access() is 'Internal. security_lint step: who reaches registered tables other than through masked views.';

-- security_lint step: masked readers whose attributes or roles let them around the masks
-- (pii_internal.reader_escapes; the tables they read directly are lint_registered_table_access's
-- rows), or who hold other Lethe groups.
create or replace function pii_internal.lint_masked_readers()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with readers as (select * from pii_internal.masked_readers())
  select 'error', pg_catalog.quote_ident(rd.rolname), 'masked reader ' || e.problem, e.hint
  from readers rd cross join lateral pii_internal.reader_escapes(rd.oid) e
  where not e.reads_tables
  union all
  select 'warning', pg_catalog.quote_ident(rd.rolname),
         pg_catalog.format('masked reader is also a member of %s, which can change masks or read raw data', g.rolname),
         'Keep support logins in pii_masked_reader only.'
  from readers rd
  join pg_catalog.pg_roles g on g.rolname in ('pii_admin', 'pii_operator', 'pii_dispatcher')
  where pg_catalog.pg_has_role(rd.oid, g.oid, 'MEMBER')
$$;
comment on function pii_internal.lint_masked_readers() is 'Internal. security_lint step: masked readers with powers masks do not restrict.';

-- security_lint step: PUBLIC privileges on Lethe's own functions and tables.
create or replace function pii_internal.lint_lethe_privileges()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  -- (pii is on this function's search_path, so regprocedure prints its names without it,
  -- and pii_internal's with it.)
  select 'error', 'function ' || fn.name, 'PUBLIC may execute a Lethe function',
         pg_catalog.format('revoke execute on function %s from public;', fn.name)
  from pg_catalog.pg_proc p
  cross join lateral (select case when p.pronamespace = 'pii'::regnamespace then 'pii.' else '' end
                             || p.oid::regprocedure::text as name) fn
  where p.pronamespace in ('pii'::regnamespace, 'pii_internal'::regnamespace)
    and pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')
  union all
  select 'error', 'table ' || pii_internal.qualified_name(c.oid),
         pg_catalog.format('PUBLIC has %s on a Lethe table', a.privilege_type),
         pg_catalog.format('revoke all on %s from public;', pii_internal.qualified_name(c.oid))
  from pg_catalog.pg_class c
  cross join lateral pg_catalog.aclexplode(c.relacl) a
  where c.relnamespace in ('pii'::regnamespace, 'pii_internal'::regnamespace) and a.grantee = 0
$$;
comment on function pii_internal.lint_lethe_privileges() is 'Internal. security_lint step: PUBLIC privileges on Lethe''s own functions and tables.';

-- security_lint step: the masked views and what keeps them current.
create or replace function pii_internal.lint_masking()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with reg as (select * from pii_internal.lint_registered_tables())
  -- A registered table without its masked view: readers do not see it (fail closed), but
  -- something is wrong.
  select 'warning', reg.name, 'registered table has no masked view', 'select * from pii.apply_masking();'
  from reg
  where not exists (select from pii.masked_views m
                    join pg_catalog.pg_class v on v.relname = m.view_name and v.relnamespace = 'masked'::regnamespace
                    where m.relid = reg.relid)
  union all
  select 'warning', 'masked.' || pg_catalog.quote_ident(v.relname),
         'PUBLIC may read this masked view (everyone, not only masked readers)',
         pg_catalog.format('revoke all on masked.%I from public;', v.relname)
  from pg_catalog.pg_class v
  cross join lateral pg_catalog.aclexplode(v.relacl) a
  where v.relnamespace = 'masked'::regnamespace and a.grantee = 0
  union all
  select 'warning', reg.name,
         'row level security is enabled: masked views read as their owner and show every row',
         'Masked readers see all rows of this table (masked). If rows must be hidden from them too, tell your Lethe maintainers.'
  from reg join pg_catalog.pg_class c on c.oid = reg.relid
  where c.relrowsecurity
  union all
  select 'warning', 'event triggers',
         'Lethe''s event triggers are not installed (no superuser at install): masked views do not follow DDL on registered tables',
         'After ALTER TABLE / DROP TABLE on a registered table, run: select * from pii.apply_masking();'
  where (select pg_catalog.count(*) from pg_catalog.pg_event_trigger e
         where e.evtname in ('lethe_masking_ddl_start', 'lethe_masking_ddl_end', 'lethe_masking_sql_drop') and e.evtenabled <> 'D') < 3
  union all
  select 'warning', 'schema public',
         'PUBLIC may create objects in schema public: other roles'' unqualified names can be shadowed (search_path attacks)',
         'revoke create on schema public from public;'
  where exists (select from pg_catalog.pg_namespace n where n.nspname = 'public')
    and pg_catalog.has_schema_privilege('public', 'public', 'CREATE')
  union all
  select 'notice', reg.name || '.' || pg_catalog.quote_ident(u.column_name),
         'column is not classified: hidden in the masked view while privacy by default is on', u.suggestion
  from pii.unclassified_columns() u join reg on reg.name = u.table_name
$$;
comment on function pii_internal.lint_masking() is 'Internal. security_lint step: masked views missing or readable by PUBLIC, RLS, event triggers, schema public, unclassified columns.';

-- A guard that is missing, disabled or not ENABLE ALWAYS lets erased people back in
-- (pii.lint lists the same).
create or replace function pii_internal.lint_guards()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when g.table_name is null then 'warning' else 'error' end, coalesce(g.table_name, 'event triggers'), g.problem, g.hint
  from pii_internal.guard_problems() g
$$;
comment on function pii_internal.lint_guards() is 'Internal. security_lint step: missing or disabled re-ingestion guards.';

-- security_lint step: a subject kind's registered tables owned by different roles. Each
-- statement runs with its own table's owner's rights, but in the same erasure (and the same
-- guarded write, which scrubs the children): one owner's code (triggers, checks, rules) runs
-- in every erasure of the other's data and sees whom it erases, can make it fail, or slow it.
create or replace function pii_internal.lint_mixed_owners()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select 'warning', pii_internal.qualified_name(t.relid),
         pg_catalog.format('owned by %s, but subject table %s (kind %s) is owned by %s: code of one owner runs during every erasure of the other''s rows (each with its own rights; it sees whom Lethe erases and can make the erasure fail)',
                           c.relowner::regrole, pii_internal.qualified_name(s.relid), s.kind, sc.relowner::regrole),
         pg_catalog.format('alter table %s owner to %s; -- or accept that these owners trust each other', pii_internal.qualified_name(t.relid), sc.relowner::regrole)
  from pii.tables t
  join pii.subject_table s on s.kind operator(pg_catalog.=) t.kind
  join pg_catalog.pg_class c on c.oid operator(pg_catalog.=) t.relid::oid
  join pg_catalog.pg_class sc on sc.oid operator(pg_catalog.=) s.relid::oid
  where c.relowner operator(pg_catalog.<>) sc.relowner
$$;
comment on function pii_internal.lint_mixed_owners() is 'Internal. security_lint step: registered tables owned by another role than their kind''s subject table.';

-- Columns that hold personal data for security_lint: registered columns not classified as
-- not PII, and columns of other tables whose names pii.discover's name rules flag (cheap:
-- no sampling) and that are not classified as not PII.
-- (PL/pgSQL: the name rules are defined later, in 92_discovery.sql.)
create or replace function pii_internal.lint_pii_columns()
returns table (relid oid, attnum smallint)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query
  select c.relid::oid, c.attnum from pii.columns c where c.category operator(pg_catalog.<>) 'not_pii'
  union
  select a.attrelid, a.attnum
  from pg_catalog.pg_class t
  join pg_catalog.pg_namespace n on n.oid = t.relnamespace
  join pg_catalog.pg_attribute a on a.attrelid = t.oid and a.attnum > 0 and not a.attisdropped
  join pg_catalog.pg_type ty on ty.oid = a.atttypid
  where t.relkind in ('r', 'p')
    and n.nspname not in ('pii', 'pii_internal', 'masked', 'graphile_worker', 'information_schema') and n.nspname !~ '^pg_'
    and not exists (select from pii.columns c where c.relid = t.oid and c.attnum = a.attnum)
    and not exists (select from pii.not_pii_columns x where x.relid = t.oid and x.attnum = a.attnum)
    and not pii_internal.is_link_column(t.oid, a.attnum)
    and exists (select from pii_internal.discovery_name_rules() r
                where pii_internal.discovery_normalize(a.attname) ~ r.pattern and pg_catalog.strpos(r.type_categories, ty.typcategory) > 0);
end
$$;
comment on function pii_internal.lint_pii_columns() is 'Internal. Columns security_lint treats as personal data: registered (not not_pii) columns, and columns pii.discover''s name rules flag.';

-- security_lint step: views, materialized views and SECURITY DEFINER functions of the
-- application that read personal data (pii_internal.lint_pii_columns) and that a role other
-- than their owner and pii_admin may read or execute: they hand out raw PII around the
-- masks. Views are followed through pg_rewrite's dependencies (a view over such a view
-- counts); functions by their dependencies (SQL-standard bodies), their row type or a
-- mention of the table's name in their body. Error when PUBLIC or a masked reader reaches
-- it, warning for other roles. Security invoker views and functions read with the caller's
-- rights and are left out, and so are Lethe's own schemas (masked.* is how PII is shared).
create or replace function pii_internal.lint_pii_readers()
returns table (severity text, object text, problem text, hint text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  with recursive pii_cols as (select * from pii_internal.lint_pii_columns()),
  pii_tables as (select distinct p.relid from pii_cols p),
  app_rel as (
    select c.oid, c.relkind, c.relowner, c.relacl, pii_internal.qualified_name(c.oid) as name
    from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where c.relkind in ('v', 'm')
      and n.nspname not in ('pii', 'pii_internal', 'masked', 'graphile_worker', 'information_schema') and n.nspname !~ '^pg_'
      and not exists (select from pg_catalog.pg_depend e where e.classid = 'pg_catalog.pg_class'::regclass and e.objid = c.oid and e.deptype = 'e')
      and not exists (select from pg_catalog.unnest(c.reloptions) o where o ~* '^security_invoker=(true|on|yes|1)$')
  ),
  -- What each view reads (attnum 0: a whole row).
  reads as (
    select r.ev_class as view_oid, d.refobjid as relid, d.refobjsubid as attnum
    from pg_catalog.pg_rewrite r
    join pg_catalog.pg_depend d on d.classid = 'pg_catalog.pg_rewrite'::regclass and d.objid = r.oid
                               and d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjid <> r.ev_class
    where r.ev_class in (select a.oid from app_rel a)
  ),
  -- The PII columns each view reaches, directly or through other views.
  exposed (view_oid, relid, attnum) as (
    select rd.view_oid, p.relid, p.attnum
    from reads rd join pii_cols p on p.relid = rd.relid and rd.attnum in (0, p.attnum)
    union
    select rd.view_oid, e.relid, e.attnum
    from reads rd join exposed e on e.view_oid = rd.relid
  ),
  views as (
    select a.oid, a.relkind, a.relowner, a.relacl, a.name,
           (select pg_catalog.string_agg(x.t, ', ' order by x.t) from (
              select pii_internal.qualified_name(e.relid) || ' (' ||
                     pg_catalog.string_agg(pg_catalog.quote_ident(att.attname), ', ' order by att.attnum) || ')' as t
              from exposed e join pg_catalog.pg_attribute att on att.attrelid = e.relid and att.attnum = e.attnum
              where e.view_oid = a.oid group by e.relid) x) as reaches
    from app_rel a
    where exists (select from exposed e where e.view_oid = a.oid)
  ),
  view_grants as (
    select v.oid, v.relkind, v.name, v.reaches, g.grantee
    from views v
    cross join lateral (
      select x.grantee from pg_catalog.aclexplode(v.relacl) x where x.privilege_type = 'SELECT'
      union
      select x.grantee from pg_catalog.pg_attribute att cross join lateral pg_catalog.aclexplode(att.attacl) x
      where att.attrelid = v.oid and att.attacl is not null and x.privilege_type = 'SELECT') g
    where g.grantee <> v.relowner
  ),
  funcs as (
    select p.oid, p.proowner, p.proacl, p.oid::regprocedure::text as name,  -- qualified: the schema is not on this search_path
           (select pg_catalog.string_agg(pii_internal.qualified_name(t.relid), ', ' order by 1) from pii_tables t
            join pg_catalog.pg_class c on c.oid = t.relid
            where exists (select from pg_catalog.pg_depend d where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid
                          and d.refclassid = 'pg_catalog.pg_class'::regclass and d.refobjid = t.relid)
               or p.prorettype = c.reltype
               or p.prosrc ~* ('\m' || pg_catalog.regexp_replace(c.relname, '([^[:alnum:]_])', '\\\1', 'g') || '\M')) as reaches
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where p.prosecdef and p.prokind in ('f', 'p')
      and p.prorettype not in ('pg_catalog.trigger'::regtype, 'pg_catalog.event_trigger'::regtype)
      and n.nspname not in ('pii', 'pii_internal', 'masked', 'graphile_worker', 'information_schema') and n.nspname !~ '^pg_'
      and not exists (select from pg_catalog.pg_depend e where e.classid = 'pg_catalog.pg_proc'::regclass and e.objid = p.oid and e.deptype = 'e')
  ),
  func_grants as (
    select f.name, f.reaches, g.grantee
    from funcs f
    cross join lateral pg_catalog.aclexplode(coalesce(f.proacl, pg_catalog.acldefault('f', f.proowner))) g
    where f.reaches is not null and g.privilege_type = 'EXECUTE' and g.grantee <> f.proowner
  ),
  findings as (
    select case vg.relkind when 'm' then 'materialized view ' else 'view ' end || vg.name as object, vg.grantee,
           'select' as verb, vg.reaches,
           pg_catalog.format('revoke select on %s from %s;', vg.name,
                             case when vg.grantee = 0 then 'public' else vg.grantee::regrole::text end) as fix
    from view_grants vg
    union all
    select 'function ' || fg.name, fg.grantee, 'execute (SECURITY DEFINER)', fg.reaches,
           pg_catalog.format('revoke execute on function %s from %s;', fg.name,
                             case when fg.grantee = 0 then 'public' else fg.grantee::regrole::text end)
    from func_grants fg
  )
  select case when f.grantee = 0 or exists (select from pii_internal.masked_readers() rd where pg_catalog.pg_has_role(rd.oid, f.grantee, 'MEMBER'))
              then 'error' else 'warning' end,
         f.object,
         pg_catalog.format('%s may %s it, and it reads personal data of %s: raw PII around the masked views',
                           case when f.grantee = 0 then 'PUBLIC' else 'role ' || f.grantee::regrole::text end,
                           f.verb, f.reaches),
         f.fix || ' -- people who need this data masked: pii.grant_masked_reader and the masked.* views'
  from findings f
  where f.grantee = 0 or not pg_catalog.pg_has_role(f.grantee, 'pii_admin', 'MEMBER')
$$;
comment on function pii_internal.lint_pii_readers() is 'Internal. security_lint step: application views, materialized views and SECURITY DEFINER functions over personal data that roles other than pii_admin may read or execute.';

create or replace function pii.security_lint()
returns table (severity text, object text, problem text, hint text)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select * from pii_internal.lint_registered_table_access()
  union all
  select * from pii_internal.lint_masked_readers()
  union all
  select * from pii_internal.lint_lethe_privileges()
  union all
  select * from pii_internal.lint_masking()
  union all
  select * from pii_internal.lint_guards()
  union all
  select * from pii_internal.lint_pii_readers()
  union all
  select * from pii_internal.lint_mixed_owners()
  order by 1, 2, 3
$$;
comment on function pii.security_lint() is
$$Lists what would let a masked reader reach raw PII or what keeps masked views from being current: PUBLIC grants
on registered tables (or columns) and on Lethe's objects, masked readers who can read registered tables directly or
are superusers, masked readers with privileged Lethe roles, missing masked views, row level security the views do
not apply, missing event triggers, CREATE on schema public, unclassified columns, missing or disabled re-ingestion
guards (erased people could come back), and application views, materialized views and SECURITY DEFINER functions
over registered PII (or columns discovery flags by name) that roles other than their owner and pii_admin may read or
execute (error when PUBLIC or a masked reader may), and registered tables owned by another role than their kind's
subject table (warning: one owner's code runs in the erasure of the other's rows). Severity error means raw PII is
reachable. Example: select * from pii.security_lint() where severity = 'error';$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.grant_role(text, name), pii.revoke_role(text, name), pii.grant_masked_reader(name),
  pii.revoke_masked_reader(name) to pii_admin;
grant execute on function pii.security_lint() to pii_admin, pii_auditor;
