-- Repeatable code: retention policies, erasure by query, notifications and legal holds
-- (F16, F17, F22, F29). State is in db/migrations/0010_retention_holds.sql.
--
-- Who runs a subject query. A subject_query is SQL written by a person; Lethe's
-- SECURITY DEFINER functions run as Lethe's owner, who can read every table. So no
-- definer function ever runs a subject query: the public functions that take or run one
-- (set_retention_policy, preview_retention, enforce_retention, request_erasure_from_query)
-- are SECURITY INVOKER and run it with the calling role's own rights, read-only, through
-- pii.subject_query_keys; they hand the resulting keys (never the query) to a definer
-- step that does the privileged part (hashing, holds, requests, records). A step takes
-- keys just as pii.request_erasure does, and is granted to the same roles, so calling a
-- step directly gains nothing. See docs/retention.md.

-- The subject kind named in a call: a registered kind, or NULL for the install's only kind.
create or replace function pii_internal.check_kind(kind text) returns void
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  perform pii_internal.subject_kind(kind);
end
$$;
comment on function pii_internal.check_kind(text) is 'Internal. Refuses an unknown subject kind, and NULL when the install has several (pii_internal.subject_kind).';

-- Runs a subject query with the caller's rights in a read-only subtransaction that is
-- always rolled back (a query cannot write, and nothing it did survives), and returns
-- its distinct non-NULL keys (and scopes, on scoped installs) as text. Errors name the
-- SQLSTATE; only errors about the query itself (class 42: syntax, unknown names,
-- permissions) quote the server's message, never one about a value.
create or replace function pii.subject_query_keys(subject_query text, kind text default null, out subject_keys text[], out scopes text[])
language plpgsql
security invoker
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj record;
  scoped boolean;
  query_ text := pg_catalog.rtrim(pg_catalog.btrim(subject_query), ';');
  aliases text;
  got_key regtype;
  got_scope regtype;
  state text;
  msg text;
begin
  if query_ is null or query_ = '' then
    raise exception 'subject_query must not be empty' using errcode = '22023';
  end if;
  if pg_catalog.strpos(query_, ';') > 0 then
    raise exception 'subject_query must be a single SELECT statement (no ";" inside it)' using errcode = '42601';
  end if;
  select * into subj from pii.subject_key_types(kind);
  scoped := subj.scope_type is not null;
  aliases := case when scoped then 'k, s' else 'k' end;

  begin
    perform pg_catalog.set_config('transaction_read_only', 'on', true);
    -- One column too many in the alias list fails only when the query has no extra column.
    begin
      execute pg_catalog.format('select from (%s) as q (%s, lethe_extra) limit 0', query_, aliases);
      raise exception using errcode = 'LTH01';
    exception when sqlstate '42P10' then
      null;
    end;
    -- The column types, even when the query returns no row.
    execute pg_catalog.format(
      'select pg_catalog.pg_typeof(q.k), %s from (values (1)) as v (x) left join (select * from (%s) as q0 limit 0) as q (%s) on true',
      case when scoped then 'pg_catalog.pg_typeof(q.s)' else 'null::regtype' end, query_, aliases)
      into got_key, got_scope;
    if got_key operator(pg_catalog.<>) subj.key_type
       or (scoped and got_scope operator(pg_catalog.<>) subj.scope_type) then
      raise exception using errcode = 'LTH02';
    end if;
    execute pg_catalog.format(
      $q$select coalesce(pg_catalog.array_agg(x.k), '{}'), %s
         from (select distinct q.k::text as k, %s as s from (%s) as q (%s) where q.k is not null) as x$q$,
      case when scoped then 'coalesce(pg_catalog.array_agg(x.s), ''{}'')' else 'null::text[]' end,
      case when scoped then 'q.s::text' else 'null::text' end, query_, aliases)
      into subject_keys, scopes;
    -- Roll the subtransaction back: read-write again, and nothing the query did is kept.
    raise exception using errcode = 'LTH00';
  exception when others then
    get stacked diagnostics state = returned_sqlstate, msg = message_text;
    if state = 'LTH00' then
      return;
    elsif state = 'LTH01' then
      raise exception 'subject_query returns more columns than expected: it must return %', 
        case when scoped then 'the key and the scope (2 columns: key, scope)' else 'one column, the subject key' end
        using errcode = '42P10';
    elsif state = '42P10' then
      raise exception 'subject_query returns fewer columns than expected: it must return %',
        case when scoped then 'the key and the scope (2 columns: key, scope)' else 'one column, the subject key' end
        using errcode = '42P10';
    elsif state = 'LTH02' then
      raise exception 'subject_query returns % but the subject key is %', 
        case when scoped then got_key::text || ', ' || coalesce(got_scope::text, '?') else got_key::text end,
        case when scoped then subj.key_type::text || ', ' || subj.scope_type::text else subj.key_type::text end
        using errcode = '42804', hint = 'Select the key column itself, or cast it: select c.id::bigint …';
    elsif state = '25006' then
      raise exception 'subject_query must be read-only: it tried to write (SQLSTATE 25006)' using errcode = '25006';
    elsif state like '42%' or state like '0A%' then
      raise exception 'subject_query is invalid: % (SQLSTATE %)', msg, state using errcode = state;
    else
      raise exception 'subject_query failed with SQLSTATE %', state using errcode = state;
    end if;
  end;
end
$$;
comment on function pii.subject_query_keys(text, text) is
$$Runs a subject query read-only with the caller's own rights and returns its distinct keys (and scopes) as text.
The query returns the key column's type of the subject kind (and the scope's, after the key, on scoped installs); it
is checked for shape, type and read-only-ness and rolled back. kind may be omitted when the install has one kind.
Example: select cardinality(subject_keys) from
pii.subject_query_keys('select c.id from app.customers c where c.created_at < now() - interval ''3 years''');$$;

-- The key and scope types of a kind's subject table, for the invoker functions above (which
-- cannot read pii_internal): 22023 listing the kinds when kind is NULL and there are several.
create or replace function pii.subject_key_types(kind text default null, out kind_name text, out key_type regtype, out scope_type regtype)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table := pii_internal.subject_kind(kind);
begin
  kind_name := subj.kind;
  select a.atttypid::regtype into key_type from pg_catalog.pg_attribute a where a.attrelid = subj.relid and a.attnum = subj.key_attnum;
  select a.atttypid::regtype into scope_type from pg_catalog.pg_attribute a where a.attrelid = subj.relid and a.attnum = subj.scope_attnum;
end
$$;
comment on function pii.subject_key_types(text) is
$$The subject kind a call means (kind, or the install's only kind) and its key and scope types (scope NULL when not
scoped); 22023 listing the kinds when kind is omitted on an install with several. Example: select * from pii.subject_key_types('staff');$$;

-- The safety limit and the erasure mode of a policy or a query erasure.
create or replace function pii_internal.check_limit_and_mode(max_subjects integer, mode text) returns void
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if max_subjects is null or max_subjects < 1 then
    raise exception 'max_subjects must be a positive integer, not %', coalesce(max_subjects::text, 'NULL') using errcode = '22023';
  end if;
  perform pii_internal.check_erase_mode(mode);
end
$$;
comment on function pii_internal.check_limit_and_mode(integer, text) is 'Internal. Refuses a missing or non-positive max_subjects and a mode other than erase or delete.';

-- Retention candidates among the query's keys: canonical, minus subjects already erased
-- (their anonymized rows stay inactive forever and would count against the limit every
-- period) and minus those under an active legal hold (counted).
create or replace function pii_internal.retention_candidates(subject_keys text[], scopes text[], kind text,
                                                             out keys text[], out key_scopes text[], out hashes bytea[], out held bigint)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  select coalesce(pg_catalog.array_agg(r.subject_key order by r.subject_hash) filter (where h.subject_hash is null), '{}'),
         coalesce(pg_catalog.array_agg(r.scope order by r.subject_hash) filter (where h.subject_hash is null), '{}'),
         coalesce(pg_catalog.array_agg(r.subject_hash order by r.subject_hash) filter (where h.subject_hash is null), '{}'),
         pg_catalog.count(h.subject_hash)
    into keys, key_scopes, hashes, held
  from pii_internal.resolve_subjects(subject_keys, scopes, greatest(pg_catalog.cardinality(subject_keys), 1), null, kind) r
  left join (select distinct hs.subject_hash from pii_internal.active_hold_subjects() hs) h on h.subject_hash = r.subject_hash
  where not exists (select from pii_internal.tombstones tb where tb.subject_hash = r.subject_hash and tb.erased_at is not null);
end
$$;
comment on function pii_internal.retention_candidates(text[], text[], text) is 'Internal. Canonical keys, scopes and hashes of a retention query''s subjects that are neither erased already nor under an active legal hold, and how many were held.';

-- The deputy of every registered table's owner (pii_internal.deputy), made now if missing:
-- registration makes it, but a table's owner may change afterwards, and a preview must work
-- in a read-only transaction, where none can be made. Setting and approving a policy call
-- this; a preview calls it too and, read-only, names the owner that has none yet (25006).
create or replace function pii_internal.ensure_deputies() returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  o record;
begin
  for o in select distinct c.relowner::regrole as owner, pg_catalog.min(pii_internal.qualified_name(c.oid::regclass)) as example
           from pii.tables t join pg_catalog.pg_class c on c.oid = t.relid group by c.relowner loop
    begin
      perform pii_internal.deputy(o.owner);
    exception when read_only_sql_transaction then
      raise exception 'Lethe has no deputy yet for role %, which owns % (the table''s owner changed since it was registered): it cannot be made in a read-only transaction', o.owner, o.example
        using errcode = '25006', hint = 'Preview once in a read-write transaction, or set or approve the policy again.';
    end;
  end loop;
end
$$;
comment on function pii_internal.ensure_deputies() is 'Internal. Makes the missing deputies of registered tables'' owners (25006 naming the owner when the transaction is read-only).';

-- Rows each registered table would change if the subjects were erased now (the
-- erasure's own statements as counts, pii_internal.run_erase_plan: rows already in their
-- erased state do not count, each read with its table owner's rights). Like the erasure,
-- it keeps no application error's text.
create or replace function pii_internal.rows_to_change(subject_keys text[], scopes text[], mode text, kind text) returns jsonb
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.jsonb_object_agg(x.t, x.n), '{}'::jsonb)
  from pii_internal.run_erase_plan(mode, subject_keys, scopes, true, null, null, null, null, kind) r,
       unnest(r.table_names, r.rows_affected) as x (t, n)
$$;
comment on function pii_internal.rows_to_change(text[], text[], text, text) is 'Internal. {table: rows} an erasure of these canonical subjects of a kind (NULL: the only kind) would change now.';

---------------------------------------------------------------------------------------
-- Legal holds

create or replace function pii_internal.active_hold_subjects(on_date date default null)
returns table (subject_hash bytea, hold_id uuid, held_until date, tables regclass[])
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select hs.subject_hash, h.id, h.held_until, h.tables
  from pii.legal_holds h join pii.hold_subjects hs on hs.hold_id = h.id
  where h.released_at is null and h.held_until >= coalesce(on_date, current_date)
$$;
comment on function pii_internal.active_hold_subjects(date) is 'Internal. Subjects under a hold that is neither released nor past its end date.';

-- The (key, table, scope) pairs of canonical subjects that an active hold keeps (table NULL:
-- every registered table), and the latest end date. Empty, at the cost of one probe, while
-- no hold is active.
create or replace function pii_internal.held_pairs(subject_keys text[], scopes text[], kind text, out held_keys text[], out held_tables oid[],
                                          out held_scopes text[], out held_until date)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  held_keys := '{}';
  held_tables := '{}';
  held_scopes := '{}';
  if not exists (select from pii.legal_holds h where h.released_at is null and h.held_until >= current_date) then
    return;
  end if;
  select coalesce(pg_catalog.array_agg(u.k), '{}'), coalesce(pg_catalog.array_agg(t.r::oid), '{}'),
         coalesce(pg_catalog.array_agg(u.s), '{}'), pg_catalog.max(a.held_until)
    into held_keys, held_tables, held_scopes, held_until
  from unnest(subject_keys, scopes) as u (k, s)
  join pii_internal.active_hold_subjects() a
    on a.subject_hash = pii_internal.subject_hash((select sk.hash_prefix from pii.subject_table sk where sk.kind = held_pairs.kind) || coalesce(u.s, ''), u.k)
  left join lateral unnest(a.tables) as t (r) on true;
end
$$;
comment on function pii_internal.held_pairs(text[], text[], text) is 'Internal. Which of these canonical subjects (of a kind) an active legal hold keeps, in which tables (NULL: all), and until when.';

-- SQL predicate: row t of a registered table is kept by a hold, the pairs of pii_internal.held_pairs
-- bound as $6 (keys), $7 (table oids), $8 (scopes). The subject row is kept whenever any
-- hold keeps any row of its subject (held rows may reference it).
create or replace function pii_internal.held_row_sql(tbl regclass) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  path record := pii_internal.subject_key_sql(tbl);
begin
  return pg_catalog.format(
    'exists (select from unnest($6::text[], $7::oid[], $8::text[]) as h (k, r, s) where h.k operator(pg_catalog.=) %s%s%s)',
    pii_internal.key_text_sql(path.key_sql, path.key_type),
    case when path.scope_sql is null then '' else pg_catalog.format(' and h.s operator(pg_catalog.=) (%s)::text', path.scope_sql) end,
    case when exists (select from pii.subject_table s where s.relid = tbl) then ''
         else pg_catalog.format(' and (h.r is null or h.r operator(pg_catalog.=) %s::oid)', tbl::oid) end);
end
$$;
comment on function pii_internal.held_row_sql(regclass) is 'Internal. SQL predicate: the row (alias t) is kept by a legal hold (pairs bound as $6/$7/$8).';

-- A delete step of the erasure plan when holds keep some of its rows: minimise the held
-- rows (the table's erase rules; NULL when it has none), then delete the others.
create or replace function pii_internal.held_step_statements(tbl regclass, delete_statement text,
                                                    out minimise text, out delete_others text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  rows_sql record := pii_internal.subject_rows_sql(tbl);
  set_list text := pii_internal.erase_set_list(tbl);
  held text := pii_internal.held_row_sql(tbl);
begin
  if set_list is not null then
    minimise := pg_catalog.format('update %s as t set %s%s where %s and %s and not (%s)', pii_internal.qualified_name(tbl), set_list,
                                  case when rows_sql.from_list = '' then '' else ' from ' || rows_sql.from_list end,
                                  rows_sql.where_sql, held, pii_internal.row_erased_sql(tbl, 'anonymize'));
  end if;
  -- The plan's delete statements end with their WHERE clause.
  delete_others := delete_statement || ' and not ' || held;
end
$$;
comment on function pii_internal.held_step_statements(regclass, text) is 'Internal. For a delete step with held rows: the UPDATE minimising them and the DELETE of the rest.';

create or replace function pii.place_hold(subject_keys text[], reason text, until date, tables regclass[] default null,
                                          kind text default null, scopes text[] default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  hold_id uuid;
  hashes bytea[];
  bad regclass;
begin
  perform pii_internal.check_kind(kind);
  if reason is null or pg_catalog.btrim(reason) = '' then
    raise exception 'a legal hold needs a reason' using errcode = '22023';
  end if;
  if until is null or until <= current_date then
    raise exception 'until must be a date after today, not %', coalesce(until::text, 'NULL') using errcode = '22023';
  end if;
  if tables is not null then
    if pg_catalog.cardinality(tables) = 0 then
      raise exception 'tables must be NULL (every registered table) or name at least one table' using errcode = '22023';
    end if;
    select t.x into bad from unnest(tables) as t (x) where not exists (select from pii.tables r where r.relid = t.x) limit 1;
    if bad is not null then
      raise exception 'table % is not registered with Lethe: only registered tables can be held', bad using errcode = '22023';
    end if;
  end if;
  select pg_catalog.array_agg(r.subject_hash) into hashes from pii_internal.resolve_subjects(subject_keys, scopes, kind => kind) r;
  if hashes is null then
    raise exception 'a legal hold needs at least one subject key' using errcode = '22023';
  end if;

  -- The kind resolved (NULL: the only kind), so the expiry job still knows it once the
  -- install has several.
  insert into pii.legal_holds (reason, held_until, tables, kind, subjects)
  values (pg_catalog.btrim(reason), until, (select pg_catalog.array_agg(distinct t.x) from unnest(tables) as t (x)),
          (pii_internal.subject_kind(kind)).kind,
          pg_catalog.cardinality(hashes))
  returning id into hold_id;
  insert into pii.hold_subjects (subject_hash, hold_id) select h, hold_id from unnest(hashes) as u (h);
  perform pii_internal.write_audit('place_hold', null, pg_catalog.jsonb_build_object(
    'hold_id', hold_id, 'subjects', pg_catalog.cardinality(hashes), 'until', until,
    'tables', (select pg_catalog.array_agg(pii_internal.qualified_name(t.x)) from unnest(tables) as t (x))));
  return hold_id;
end
$$;
comment on function pii.place_hold(text[], text, date, regclass[], text, text[]) is
$$Places a legal hold (F29): until the given date, the subjects' rows in the held tables (NULL: every registered
table) are kept when the subjects are erased, minimised (their PII columns erased) instead of deleted; retention
leaves held subjects out. Subjects are kept as keyed hashes. Keep names out of the reason.
Example: select pii.place_hold(array['42'], 'invoices: 10-year tax retention', date '2036-12-31', array['app.orders'::regclass]);$$;

create or replace function pii.release_hold(hold_id uuid) returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  h pii.legal_holds;
begin
  select * into h from pii.legal_holds x where x.id = release_hold.hold_id for update;
  if h.id is null then
    raise exception 'legal hold % does not exist', hold_id using errcode = '42704';
  end if;
  if h.released_at is not null then
    raise exception 'legal hold % was already released at %', hold_id, h.released_at using errcode = '55000';
  end if;
  update pii.legal_holds x set released_at = pg_catalog.now(), released_by = session_user where x.id = h.id;
  perform pii_internal.write_audit('release_hold', null, pg_catalog.jsonb_build_object('hold_id', h.id, 'subjects', h.subjects));
end
$$;
comment on function pii.release_hold(uuid) is
$$Ends a legal hold now (audited): its subjects are no longer left out of retention, and the expiry job erases their
held rows. Example: select pii.release_hold('6f1c…'::uuid);$$;

create or replace view pii.holds with (security_barrier) as
select h.id as hold_id, h.reason, h.held_until,
       case when h.released_at is not null then 'released'
            when h.held_until < current_date then 'expired'
            else 'active' end as status,
       h.held_until - current_date as days_left,
       (select pg_catalog.array_agg(pii_internal.qualified_name(t.x) order by 1) from unnest(h.tables) as t (x)) as tables,
       h.kind, h.subjects,
       (select pg_catalog.array_agg(pg_catalog.encode(hs.subject_hash, 'hex') order by hs.subject_hash)
        from pii.hold_subjects hs where hs.hold_id = h.id) as subject_hashes,
       h.placed_by, h.placed_at, h.released_by, h.released_at, h.ended_at
from pii.legal_holds h;
comment on view pii.holds is 'Legal holds with their status (active, released, expired), days left, held tables (NULL: all) and subjects as keyed hashes only.';

-- Daily job: notices 30, 7 and 1 days before a hold ends (the nearest one due, once), and
-- marks holds that ended (expired or released) as handled with a hold_expired notice.
-- on_date is injectable for tests; the worker passes nothing.
-- The keys (and scopes) under which the erased subjects of an ended hold can be found now.
-- Usually their own keys, by hashing the subject table's (pii_internal.subjects_by_hash).
-- When the key is PII, erasure replaced it with its pseudonym (kept in the tombstone) in
-- every row, the held ones included, so no key hashes to the subject any more: the held
-- rows are found under the pseudonym, and the scope (scoped installs) on the subject row
-- that carries it (one index probe per subject on the key).
create or replace function pii_internal.hold_expiry_subjects(hashes bytea[], kind text, out subject_keys text[], out scopes text[])
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table;
begin
  subj := pii_internal.subject_kind(kind);
  if not subj.key_is_pii then
    select f.subject_keys, f.scopes into subject_keys, scopes from pii_internal.subjects_by_hash(hashes, subj.kind) f;
    return;
  end if;
  if subj.scope_attnum is null then
    select coalesce(pg_catalog.array_agg(tb.pseudonym), '{}') into subject_keys
    from pii_internal.tombstones tb where tb.subject_hash = any (hashes) and tb.pseudonym is not null;
    return;
  end if;
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(t.%1$I::text), '{}'), coalesce(pg_catalog.array_agg(t.%2$I::text), '{}')
       from pii_internal.tombstones tb join %3$s as t on t.%1$I operator(pg_catalog.=) tb.pseudonym
       where tb.subject_hash = any ($1) and tb.pseudonym is not null$q$,
    pii_internal.column_name(subj.relid, subj.key_attnum), pii_internal.column_name(subj.relid, subj.scope_attnum),
    pii_internal.qualified_name(subj.relid))
    into subject_keys, scopes using hashes;
end
$$;
comment on function pii_internal.hold_expiry_subjects(bytea[], text) is 'Internal. Keys (and scopes) under which an ended hold''s erased subjects of a kind are found now: their keys, or their pseudonyms when the key is PII.';

create or replace function pii.hold_tick(on_date date default null)
returns table (hold_id uuid, notice text, days_left integer)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  today date := coalesce(on_date, current_date);
  ended record;
  hashes bytea[];
  found_ record;
  rid uuid;
  note bigint;
begin
  return query
  with due as (
    select h.id, h.held_until - today as days_left,
           (select pg_catalog.min(d) from unnest(array[30, 7, 1]) as d where d >= h.held_until - today) as threshold
    from pii.legal_holds h
    where h.released_at is null and h.ended_at is null and h.held_until >= today and h.held_until - today <= 30
  ), sent as (
    insert into pii.hold_notices (hold_id, days_before)
    select d.id, d.threshold from due d
    where not exists (select from pii.hold_notices n where n.hold_id = d.id and n.days_before <= d.threshold)
    returning hold_notices.hold_id, hold_notices.days_before
  ), noted as (
    insert into pii.notifications (kind, hold_id, details)
    select 'hold_expiring', s.hold_id, pg_catalog.jsonb_build_object('days_left', d.days_left, 'notice', s.days_before || ' days')
    from sent s join due d on d.id = s.hold_id
    returning notifications.id, notifications.kind, notifications.hold_id, notifications.details
  )
  select n.hold_id, n.kind, (n.details ->> 'days_left')::integer
  from noted n, lateral pii_internal.announce_notification(n.id, n.kind, null, n.hold_id, n.details) as a;

  -- Ended holds (expired or released): one request per hold erases the rows it kept, for
  -- its subjects that were erased meanwhile and no other hold still keeps.
  for ended in select h.id, h.subjects, h.kind from pii.legal_holds h
               where h.ended_at is null and (h.released_at is not null or h.held_until < today)
               order by h.placed_at
  loop
    rid := null;
    select pg_catalog.array_agg(hs.subject_hash) into hashes
    from pii.hold_subjects hs
    join pii_internal.tombstones tb on tb.subject_hash = hs.subject_hash and tb.erased_at is not null
    where hs.hold_id = ended.id
      and not exists (select from pii_internal.active_hold_subjects(today) a where a.subject_hash = hs.subject_hash);
    if hashes is not null then
      found_ := pii_internal.hold_expiry_subjects(hashes, ended.kind);
      if pg_catalog.cardinality(found_.subject_keys) > 0 then
        rid := pii_internal.create_request(
          found_.subject_keys,
          case when (pii_internal.subject_kind(ended.kind)).scope_attnum is not null then found_.scopes end,
          null, 'hold-expiry:' || ended.id, 'hold_expiry:' || ended.id, 'erase', null, ended.kind);
      end if;
    end if;
    update pii.legal_holds h set ended_at = pg_catalog.now(), expiry_request_id = rid where h.id = ended.id;
    insert into pii.notifications (kind, hold_id, details)
    values ('hold_expired', ended.id, pg_catalog.jsonb_build_object('subjects', ended.subjects, 'request_id', rid))
    returning id into note;
    perform pii_internal.announce_notification(note, 'hold_expired', null, ended.id,
                                      pg_catalog.jsonb_build_object('subjects', ended.subjects, 'requestId', rid));
    hold_id := ended.id;
    notice := 'hold_expired';
    days_left := null;
    return next;
  end loop;
end
$$;
comment on function pii.hold_tick(date) is
$$Daily legal-hold job (graphile-worker task lethe_hold_tick): notifications 30, 7 and 1 days before a hold ends;
once a hold has ended (expired or released), one erasure request (source hold_expiry:<hold id>) for the rows it kept,
and a hold_expired notification naming it. on_date replaces today (tests).
Example: select * from pii.hold_tick();$$;

---------------------------------------------------------------------------------------
-- Notifications

create or replace function pii_internal.announce_notification(id bigint, kind text, policy_name text, hold_id uuid, details jsonb)
returns void
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.pg_notify('pii_notification', (pg_catalog.jsonb_build_object(
    'id', id, 'kind', kind, 'policy', policy_name, 'holdId', hold_id) operator(pg_catalog.||) details)::text)
$$;
comment on function pii_internal.announce_notification(bigint, text, text, uuid, jsonb) is 'Internal. NOTIFY pii_notification with a notification''s ids and counts.';

---------------------------------------------------------------------------------------
-- Retention policies

-- Start (UTC) of the schedule period containing at: one request per policy and period.
create or replace function pii.retention_period_start(schedule text, at timestamptz) returns timestamptz
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.date_trunc(case schedule when 'hourly' then 'hour' when 'daily' then 'day'
                                             when 'weekly' then 'week' else 'month' end, at, 'UTC')
$$;
comment on function pii.retention_period_start(text, timestamptz) is $$Start (UTC) of the retention period (hour, day, ISO week, month) containing a moment: one request per policy and period. Example: select pii.retention_period_start('weekly', now());$$;

create or replace view pii.retention_policies with (security_barrier) as
select v.policy_name, v.version, v.subject_query, v.kind, v.key_type::text as key_type, v.max_subjects, v.mode, v.schedule,
       v.enabled, v.approved_at is not null as approved, v.defined_by, v.defined_at, v.approved_by, v.approved_at,
       (select r.at from pii.retention_runs r where r.policy_name = v.policy_name order by r.at desc limit 1) as last_run_at,
       (select r.outcome from pii.retention_runs r where r.policy_name = v.policy_name order by r.at desc limit 1) as last_outcome
from pii.retention_policy_versions v
where v.version = (select pg_catalog.max(x.version) from pii.retention_policy_versions x where x.policy_name = v.policy_name);
comment on view pii.retention_policies is 'Each retention policy''s current version: query, limit, mode, schedule, enabled, approval, last run.';

create or replace view pii.retention_history with (security_barrier) as
select r.id, r.at, r.policy_name, r.version, r.period_start, r.run_by, r.candidates, r.held, r.outcome, r.request_id,
       v.max_subjects
from pii.retention_runs r
left join pii.retention_policy_versions v on v.policy_name = r.policy_name and v.version = r.version;
comment on view pii.retention_history is 'Every retention run: when, by whom, version, candidates, held subjects left out, outcome (requested, already_requested, nothing_to_erase, blocked, unapproved) and the request filed.';

-- Definer step of set_retention_policy: the query has been validated with the caller's rights.
create or replace function pii.store_retention_version(name text, subject_query text, key_type regtype, max_subjects integer,
                                                       kind text, mode text, schedule text, enabled boolean)
returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  cur pii.retention_policy_versions;
  v integer;
begin
  -- The kind resolved (NULL: the only kind): the policy keeps meaning it once the install
  -- has several.
  kind := (pii_internal.subject_kind(kind)).kind;
  if name is null or name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' then
    raise exception 'policy name must be 1-63 characters of a-z, 0-9, _ . - (starting with a letter or digit), not "%"', name
      using errcode = '22023';
  end if;
  perform pii_internal.check_limit_and_mode(max_subjects, mode);
  if schedule is null or schedule not in ('hourly', 'daily', 'weekly', 'monthly') then
    raise exception 'schedule must be hourly, daily, weekly or monthly, not "%"', schedule using errcode = '22023';
  end if;
  if enabled is null then
    raise exception 'enabled must be true or false' using errcode = '22004';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('lethe:retention:' || name));
  -- So that its preview works in a read-only transaction.
  perform pii_internal.ensure_deputies();
  select * into cur from pii.retention_policy_versions x where x.policy_name = name order by x.version desc limit 1;
  if cur.version is not null and cur.subject_query = subject_query and cur.max_subjects = max_subjects
     and cur.kind is not distinct from kind and cur.mode = mode and cur.schedule = schedule and cur.enabled = enabled then
    return cur.version;
  end if;
  v := coalesce(cur.version, 0) + 1;
  insert into pii.retention_policy_versions (policy_name, version, subject_query, kind, key_type, max_subjects, mode, schedule, enabled)
  values (name, v, subject_query, kind, key_type, max_subjects, mode, schedule, enabled);
  perform pii_internal.write_audit('set_retention_policy', null, pg_catalog.jsonb_build_object(
    'policy', name, 'version', v, 'max_subjects', max_subjects, 'mode', mode, 'schedule', schedule, 'enabled', enabled));
  return v;
end
$$;
comment on function pii.store_retention_version(text, text, regtype, integer, text, text, text, boolean) is
$$Step of pii.set_retention_policy, which validates the query with the caller's rights first: records a new version when something changed. Called directly it stores the query unchecked, and enforce_retention still runs it only with rights its author has. Use pii.set_retention_policy. Example: select pii.store_retention_version('inactive-3y', 'select c.id from app.customers c', 'bigint', 100, null, 'erase', 'daily', false);$$;

create or replace function pii.set_retention_policy(name text, subject_query text, max_subjects integer, kind text default null,
                                                    mode text default 'erase', schedule text default 'daily',
                                                    enabled boolean default false)
returns integer
language plpgsql security invoker
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  key_type regtype;
begin
  perform pii.subject_query_keys(subject_query, kind);
  key_type := (pii.subject_key_types(kind)).key_type;
  return pii.store_retention_version(name, subject_query, key_type, max_subjects, kind, mode, schedule, enabled);
end
$$;
comment on function pii.set_retention_policy(text, text, integer, text, text, text, boolean) is
$$Defines or changes a retention policy (F16): subject_query selects the subjects to erase (the key column, plus the
scope on scoped installs). It is validated now, read-only and with your own rights (it parses, returns the key's
type, does not write). Each change makes a new version, which pii_admin must approve (pii.approve_retention) before
enforcement runs it; enabled puts it on the worker's schedule (hourly, daily, weekly, monthly: one request per
period). Returns the version. Example:
select pii.set_retention_policy('inactive-3y', $q$select c.id from app.customers c where c.last_seen_at < now() - interval '3 years'$q$, 5000);$$;

create or replace function pii.approve_retention(name text, version integer) returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  cur pii.retention_policy_versions;
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('lethe:retention:' || name));
  select * into cur from pii.retention_policy_versions x where x.policy_name = approve_retention.name order by x.version desc limit 1;
  if cur.version is null then
    raise exception 'retention policy "%" does not exist', name using errcode = '42704';
  end if;
  if version is distinct from cur.version then
    raise exception 'retention policy "%" is at version %, not %: approve the current version', name, cur.version,
      coalesce(version::text, 'NULL') using errcode = '55000', hint = 'Preview it first: select * from pii.preview_retention(...).';
  end if;
  perform pii_internal.ensure_deputies();
  if cur.approved_at is not null then
    return;
  end if;
  update pii.retention_policy_versions x set approved_by = session_user, approved_at = pg_catalog.now()
  where x.policy_name = cur.policy_name and x.version = cur.version;
  perform pii_internal.write_audit('approve_retention', null, pg_catalog.jsonb_build_object('policy', name, 'version', version));
end
$$;
comment on function pii.approve_retention(text, integer) is
$$Approves a retention policy's current version (pii_admin only; audited). Enforcement refuses unapproved versions;
any later change needs a new approval. Example: select pii.approve_retention('inactive-3y', 2);$$;

create or replace function pii_internal.current_retention_version(name text) returns pii.retention_policy_versions
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  cur pii.retention_policy_versions;
begin
  select * into cur from pii.retention_policy_versions x where x.policy_name = name order by x.version desc limit 1;
  if cur.version is null then
    raise exception 'retention policy "%" does not exist', name using errcode = '42704';
  end if;
  return cur;
end
$$;
comment on function pii_internal.current_retention_version(text) is 'Internal. The current version of a policy; 42704 when there is none.';

-- Definer step of preview_retention.
create or replace function pii.retention_preview_step(name text, policy_version integer, subject_keys text[], scopes text[],
                                                      out candidates bigint, out held bigint, out sample text[], out rows_to_change jsonb)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  cur pii.retention_policy_versions := pii_internal.current_retention_version(name);
  s record;
begin
  perform pii_internal.ensure_deputies();
  s := pii_internal.retention_candidates(subject_keys, scopes, cur.kind);
  candidates := pg_catalog.cardinality(s.keys);
  held := s.held;
  select coalesce(pg_catalog.array_agg(pg_catalog.encode(h, 'hex')), '{}') into sample
  from (select h from unnest(s.hashes) as u (h) limit 20) x;
  rows_to_change := pii_internal.rows_to_change(s.keys, s.key_scopes, cur.mode, cur.kind);
  -- A read-only transaction (a standby, a cautious session) can keep no audit row: the
  -- preview changes nothing either way, and the caller sees no key.
  if pg_catalog.current_setting('transaction_read_only') operator(pg_catalog.=) 'off' then
    perform pii_internal.write_audit('preview_retention', null, pg_catalog.jsonb_build_object(
      'policy', name, 'version', policy_version, 'candidates', candidates, 'held', held, 'max_subjects', cur.max_subjects));
  end if;
end
$$;
comment on function pii.retention_preview_step(text, integer, text[], text[]) is $$Step of pii.preview_retention, which runs the query with the caller's rights and passes the keys here: candidates, held, sample, rows per table, one audit row. Example: select * from pii.retention_preview_step('inactive-3y', 1, array['42'], null);$$;

create or replace function pii.preview_retention(name text)
returns table (version integer, candidates bigint, held bigint, max_subjects integer, within_limit boolean,
               sample text[], rows_to_change jsonb)
language plpgsql security invoker
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  cur pii.retention_policy_versions;
  q record;
  p record;
begin
  select * into cur from pii.retention_policy_versions x where x.policy_name = preview_retention.name order by x.version desc limit 1;
  if cur.version is null then
    raise exception 'retention policy "%" does not exist', name using errcode = '42704';
  end if;
  q := pii.subject_query_keys(cur.subject_query, cur.kind);
  p := pii.retention_preview_step(name, cur.version, q.subject_keys, q.scopes);
  return query select cur.version, p.candidates, p.held, cur.max_subjects, p.candidates <= cur.max_subjects, p.sample, p.rows_to_change;
end
$$;
comment on function pii.preview_retention(text) is
$$What enforcing a policy's current version would do now, changing nothing (one audit row): candidates, held
subjects left out, the limit, a sample of 20 subject hashes and the rows each table would change. Runs the query with
your own rights. Example: select * from pii.preview_retention('inactive-3y');$$;

-- Definer step of enforce_retention for one policy, given the query's keys (NULL when the
-- query was not run: the version is unapproved or the period already has its request).
create or replace function pii.retention_enforce_step(name text, policy_version integer, subject_keys text[], scopes text[])
returns table (policy_name text, version integer, outcome text, candidates bigint, held bigint, request_id uuid)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  cur pii.retention_policy_versions;
  period timestamptz;
  previous pii.retention_runs;
  s record;
  outcome_ text;
  rid uuid;
  note bigint;
begin
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('lethe:retention:' || name));
  cur := pii_internal.current_retention_version(name);
  if cur.version is distinct from policy_version then
    raise exception 'retention policy "%" changed during the run (now version %)', name, cur.version using errcode = '40001';
  end if;
  period := pii.retention_period_start(cur.schedule, pg_catalog.now());
  select * into previous from pii.retention_runs r
  where r.policy_name = name and r.period_start = period and r.outcome = 'requested' limit 1;

  if cur.approved_at is null then
    outcome_ := 'unapproved';
  elsif previous.id is not null then
    outcome_ := 'already_requested';
    rid := previous.request_id;
  elsif subject_keys is null then
    -- The caller did not run the query: its author lacks the caller's rights (see enforce_retention).
    outcome_ := 'refused';
  else
    s := pii_internal.retention_candidates(subject_keys, scopes, cur.kind);
    held := s.held;
    candidates := pg_catalog.cardinality(s.keys);
    if candidates = 0 then
      outcome_ := 'nothing_to_erase';
    elsif candidates > cur.max_subjects then
      outcome_ := 'blocked';
      insert into pii.notifications (kind, policy_name, details)
      values ('retention_blocked', name, pg_catalog.jsonb_build_object(
        'version', cur.version, 'candidates', candidates, 'max_subjects', cur.max_subjects, 'period_start', period))
      returning id into note;
      perform pii_internal.announce_notification(note, 'retention_blocked', name, null, pg_catalog.jsonb_build_object(
        'version', cur.version, 'candidates', candidates, 'max_subjects', cur.max_subjects));
    else
      outcome_ := 'requested';
      rid := pii_internal.create_request(s.keys, case when scopes is null then null else s.key_scopes end, null,
                                'retention:' || name || ':' || pg_catalog.to_char(period at time zone 'UTC', 'YYYY-MM-DD"T"HH24'),
                                'retention:' || name, cur.mode, null, cur.kind);
    end if;
  end if;
  insert into pii.retention_runs (policy_name, version, period_start, candidates, held, outcome, request_id)
  values (name, cur.version, period, candidates, held, outcome_, rid);
  perform pii_internal.write_audit('enforce_retention', rid, pg_catalog.jsonb_build_object(
    'policy', name, 'version', cur.version, 'outcome', outcome_, 'candidates', candidates, 'held', held,
    'max_subjects', cur.max_subjects));
  return query select name, cur.version, outcome_, candidates, held, rid;
end
$$;
comment on function pii.retention_enforce_step(text, integer, text[], text[]) is $$Step of pii.enforce_retention, which runs the query with the caller's rights and passes the keys here (NULL: not run): approval, period, holds, limit, request, run record, notification. Keys given directly are trusted as pii.request_erasure trusts them. Example: select * from pii.retention_enforce_step('inactive-3y', 2, array['42'], null);$$;

create or replace function pii.enforce_retention(name text default null)
returns table (policy_name text, version integer, outcome text, candidates bigint, held bigint, request_id uuid)
language plpgsql security invoker
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  p record;
  keys text[];
  scps text[];
  allowed boolean;
begin
  if name is not null and not exists (select from pii.retention_policy_versions x where x.policy_name = enforce_retention.name) then
    raise exception 'retention policy "%" does not exist', name using errcode = '42704';
  end if;
  for p in
    select v.*, pii.retention_period_start(v.schedule, pg_catalog.now()) as period
    from pii.retention_policies v
    where (enforce_retention.name is null and v.enabled) or v.policy_name = enforce_retention.name
    order by v.policy_name
  loop
    -- The scheduled run skips a policy whose period already has a run of this version;
    -- a run by name always runs (after a blocked run, say).
    continue when name is null and exists (
      select from pii.retention_runs r
      where r.policy_name = p.policy_name and r.period_start = p.period and (r.version = p.version or r.outcome = 'requested'));
    keys := null;
    scps := null;
    -- The query runs with the caller's rights (the worker's, on schedule): only if its author
    -- holds them too, so nobody reads through a more privileged role what they cannot read.
    allowed := pg_catalog.pg_has_role(p.defined_by, current_user, 'USAGE');
    if not allowed and name is not null then
      raise exception 'retention policy "%" version % was defined by %, who does not have the rights of %, which would run its query',
        p.policy_name, p.version, p.defined_by, current_user using errcode = '42501',
        hint = pg_catalog.format('Run it as its author, or grant %I to %I.', current_user, p.defined_by);
    end if;
    if p.approved and allowed and not exists (select from pii.retention_runs r where r.policy_name = p.policy_name
                                              and r.period_start = p.period and r.outcome = 'requested') then
      select x.subject_keys, x.scopes into keys, scps from pii.subject_query_keys(p.subject_query, p.kind) x;
    end if;
    return query select * from pii.retention_enforce_step(p.policy_name, p.version, keys, scps);
  end loop;
end
$$;
comment on function pii.enforce_retention(text) is
$$Enforces one retention policy (by name) or every enabled one (NULL: what the worker's schedule runs), with your own
rights for the query: at most max_subjects candidates (held subjects left out) become one erasure request (source
retention:<name>; one per policy and period); more is blocked: nothing is erased, a row goes to pii.notifications and
NOTIFY pii_notification names the policy and count. Unapproved versions are refused, and so is a version whose
author does not have the caller's rights (42501 by name; outcome refused on schedule). Every run is recorded
(pii.retention_history). Example: select * from pii.enforce_retention('inactive-3y');$$;

---------------------------------------------------------------------------------------
-- Erasure by query (segments and lists)

create or replace function pii.query_erasure_step(subject_keys text[], scopes text[], max_subjects integer, request_key text,
                                                  kind text, mode text, dry_run boolean)
returns table (request_id uuid, subjects bigint, rows_to_change jsonb)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  r record;
  n bigint;
begin
  perform pii_internal.check_kind(kind);
  perform pii_internal.check_limit_and_mode(max_subjects, mode);
  select coalesce(pg_catalog.array_agg(x.subject_key), '{}') as keys, coalesce(pg_catalog.array_agg(x.scope), '{}') as scps
    into r
  from pii_internal.resolve_subjects(subject_keys, scopes, greatest(pg_catalog.cardinality(subject_keys), 1), null, kind) x;
  n := pg_catalog.cardinality(r.keys);
  if n > max_subjects then
    raise exception 'subject_query selects % subjects, more than max_subjects (%): nothing was requested', n, max_subjects
      using errcode = '54000', hint = 'Check the query (pass dry_run => true to see what it selects), or raise max_subjects.';
  end if;
  if dry_run then
    return query select null::uuid, n, pii_internal.rows_to_change(r.keys, r.scps, mode, kind);
    return;
  end if;
  if n = 0 then
    raise exception 'subject_query selects no subject: nothing to request' using errcode = '22023';
  end if;
  return query select pii_internal.create_request(r.keys, case when scopes is null then null else r.scps end, null, request_key,
                                         'query', mode, null, kind), n, null::jsonb;
end
$$;
comment on function pii.query_erasure_step(text[], text[], integer, text, text, text, boolean) is $$Step of pii.request_erasure_from_query, which runs the query with the caller's rights and passes the keys here: kind, limit, dry run (count and rows per table) or one request. Example: select * from pii.query_erasure_step(array['42'], null, 10, null, null, 'erase', true);$$;

create or replace function pii.request_erasure_from_query(subject_query text, max_subjects integer, request_key text default null,
                                                          kind text default null, mode text default 'erase',
                                                          dry_run boolean default false)
returns table (request_id uuid, subjects bigint, rows_to_change jsonb)
language plpgsql security invoker
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  q record;
begin
  q := pii.subject_query_keys(subject_query, kind);
  return query select * from pii.query_erasure_step(q.subject_keys, q.scopes, max_subjects, request_key, kind, mode,
                                                    coalesce(dry_run, false));
end
$$;
comment on function pii.request_erasure_from_query(text, integer, text, text, text, boolean) is
$$Erases a segment or list (F22): the subjects a query selects (run read-only, with your own rights) become one
request (source query), refused with 54000 when they are more than max_subjects. dry_run returns the count and the
rows each table would change, and changes nothing. Example:
select * from pii.request_erasure_from_query('select m.customer_id from app.list_members m where m.list_id = 7', 1000, dry_run => true);$$;

---------------------------------------------------------------------------------------
-- Grants

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.subject_query_keys(text, text), pii.subject_key_types(text) to pii_admin, pii_operator;
-- Pure date arithmetic that enforce_retention (invoker) uses to skip finished periods.
grant execute on function pii.retention_period_start(text, timestamptz) to pii_operator;
grant execute on function pii.set_retention_policy(text, text, integer, text, text, text, boolean),
  pii.store_retention_version(text, text, regtype, integer, text, text, text, boolean),
  pii.approve_retention(text, integer), pii.place_hold(text[], text, date, regclass[], text, text[]),
  pii.release_hold(uuid) to pii_admin;
grant execute on function pii.preview_retention(text), pii.retention_preview_step(text, integer, text[], text[]),
  pii.enforce_retention(text), pii.retention_enforce_step(text, integer, text[], text[]),
  pii.request_erasure_from_query(text, integer, text, text, text, boolean),
  pii.query_erasure_step(text[], text[], integer, text, text, text, boolean), pii.hold_tick(date) to pii_operator;
grant select on pii.retention_policy_versions, pii.retention_policies, pii.retention_runs to pii_admin, pii_operator, pii_auditor;
grant select on pii.retention_history, pii.notifications to pii_admin, pii_operator, pii_auditor;
grant select on pii.holds to pii_admin, pii_auditor;

