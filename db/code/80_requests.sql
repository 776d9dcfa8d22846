-- Repeatable code: erasure requests (request_erasure → process_request_chunk → finish_request) and their status.

comment on table pii.requests is 'Erasure requests: counts, status, due date, verification result. The idempotency key is kept as a keyed hash.';
comment on table pii_internal.request_items is 'One item per distinct subject of a request. subject_key/scope are held only while the item is pending (or failed, for a retry).';
-- No index: it would slow every COPY several times over, and request_erasure_from_import
-- reads an import's rows once, in the transaction that deletes them.
comment on table pii.import_rows is 'Staging for CSV imports (COPY target). Rows live only until pii.request_erasure_from_import consumes them.';

revoke all on pii.requests, pii_internal.request_items, pii_internal.request_residuals, pii.import_rows from public;
grant select on pii.requests to pii_operator, pii_auditor;
grant insert on pii.import_rows to pii_operator;

create or replace view pii.overdue_requests with (security_barrier) as
select r.id as request_id, r.status, r.source, r.total, r.erased, r.requested_at, r.due_at,
       pg_catalog.now() - r.due_at as overdue_by
from pii.requests r
where r.status in ('queued', 'running') and r.due_at < pg_catalog.now();
comment on view pii.overdue_requests is 'Open requests past their due date (F27).';
revoke all on pii.overdue_requests from public;
grant select on pii.overdue_requests to pii_operator, pii_auditor;

-- Sums two {table: rows} objects.
create or replace function pii_internal.add_row_counts(a jsonb, b jsonb) returns jsonb
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.jsonb_object_agg(x.key, x.total), '{}'::jsonb)
  from (select e.key, pg_catalog.sum(e.value::bigint) as total
        from (select * from pg_catalog.jsonb_each_text(coalesce(a, '{}'::jsonb))
              union all
              select * from pg_catalog.jsonb_each_text(coalesce(b, '{}'::jsonb))) e
        group by e.key) x
$$;
comment on function pii_internal.add_row_counts(jsonb, jsonb) is 'Internal. Adds per-table row counts.';

create or replace function pii_internal.enqueue_request_job(request_id uuid) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  -- A psql-only install (lethe sql) has no graphile-worker schema until `lethe worker` first
  -- starts; the request stays queued and the worker's pii.resume_requests() queues it then.
  if pg_catalog.to_regnamespace('graphile_worker') is null then
    return;
  end if;
  perform graphile_worker.add_job('lethe_process_request', pg_catalog.json_build_object('requestId', request_id),
                                  job_key => 'lethe:request:' || request_id, max_attempts => 10);
end
$$;
comment on function pii_internal.enqueue_request_job(uuid) is 'Internal. Queues (or re-queues) the graphile-worker job that processes a request.';

create or replace function pii_internal.create_request(subject_keys text[], scopes text[], source_rows bigint[], request_key text,
                                   source text, mode text, due_at timestamptz, kind text)
returns uuid
language plpgsql
set search_path = pg_catalog, pii, pg_temp
-- A million-subject request sorts and joins a few hundred MB of keys and hashes: in
-- memory, not in temporary files (4MB, the default, spills at 20,000 subjects).
set work_mem = '256MB'
-- The pseudonym key is bound into the statement that writes the items (see pii_internal.pseudonyms).
set debug_print_plan = off
as $$
declare
  cfg pii.settings;
  subj pii.subject_table;
  key_hash bytea;
  rid uuid;
  canonical record;
  matched text[];
  pk pii_internal.pseudonym_key;
  n_keys bigint := coalesce(pg_catalog.cardinality(subject_keys), 0);
  n_subjects bigint;
  n_matched bigint;
  stmt text;
  violated text;
begin
  perform pii_internal.check_erase_mode(mode);
  subj := pii_internal.subject_kind(kind);
  if source is null or pg_catalog.btrim(source) = '' then
    raise exception 'source must not be empty' using errcode = '22023';
  end if;
  if request_key is not null then
    key_hash := pii_internal.hmac('request_key' || pg_catalog.chr(31) || request_key);
    select r.id into rid from pii.requests r where r.request_key_hash = key_hash;
    if rid is not null then
      return rid;
    end if;
  end if;
  select * into cfg from pii.settings;

  canonical := pii_internal.canonical_input(subj, subject_keys, scopes, cfg.max_keys_per_request, source_rows);
  if n_keys = 0 then
    raise exception 'an erasure request needs at least one subject key' using errcode = '22023';
  end if;
  matched := pii_internal.matched_subjects(canonical.found_keys, canonical.found_scopes, subj.kind);

  -- Counts are set below, once the subjects are known.
  insert into pii.requests (request_key_hash, source, mode, kind, due_at, total, duplicates)
  values (key_hash, source, mode, subj.kind, coalesce(due_at, pg_catalog.now() + cfg.default_due), 0, 0)
  on conflict (request_key_hash) do nothing
  returning id into rid;
  if rid is null then
    -- A concurrent call with the same key won the race.
    select r.id into rid from pii.requests r where r.request_key_hash = key_hash;
    return rid;
  end if;
  if subj.key_is_pii then
    select * into pk from pii_internal.pseudonym_key;
  end if;

  -- One statement, one pass over the subjects: hashed, bucketed and matched,
  -- deduplicated (the first CSV row of each), then written as items and tombstones. Both are
  -- written in subject-hash order (appends to the right edge of each B-tree instead of
  -- random page visits, half the cost at a million subjects), and tombstones are locked in
  -- hash order (see process_request_chunk). Guards act from this moment (the tombstones);
  -- the job runs once this transaction commits.
  -- Subjects without a tombstone (in the statement's snapshot: nearly all of a large
  -- request) get a plain INSERT; only those with one go through ON CONFLICT, whose
  -- speculative insertion cost a third more per row at a million subjects. A tombstone
  -- committed by another transaction after the snapshot (a guard, a request beside this
  -- one) makes the plain INSERT fail with unique_violation: the statement is then run again
  -- with every subject through ON CONFLICT ($9 false), as before.
  stmt := pg_catalog.format(
    -- x is sorted once, by hash and CSV row: DISTINCT ON keeps each subject's first row
    -- (the hash is the subject: the items' primary key), with no hash aggregate of a
    -- million keys before the sort. The inserts read x in that order (a CTE is read back
    -- as written).
    -- The match is compared in the C collation: byte order, no locale rules, for a hash of
    -- a million keys. "= any (subquery)" is a hashed subplan: one hash table of the
    -- matched subjects, no sort, and no join whose row estimate (the product of two
    -- unnests) would size the anti-joins below for hundreds of millions of rows.
    $q$with x as materialized (
         select distinct on (y.h) y.* from (
           select %s as h, r.k, r.s, %s as p, r.r, %s as b,
                  (coalesce(r.s, '') operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) r.k) collate "C"
                    operator(pg_catalog.=) any (select m.x from unnest($6::text[]) as m (x)) as m
           from unnest($1::text[], $2::text[], $5::bigint[]) as r (k, s, r)) y
         order by y.h, y.r
       ), items as (
         insert into pii_internal.request_items (request_id, subject_hash, subject_key, scope, pseudonym, source_row, matched)
         select $7, x.h, x.k, x.s, x.p, x.r, x.m from x
       ), fresh as (
         insert into pii_internal.tombstones (subject_hash, pseudonym, request_id, kind, bucket)
         select x.h, x.p, $7, $8, x.b from x
         where $9 and not exists (select from pii_internal.tombstones t where t.subject_hash operator(pg_catalog.=) x.h)
       ), kept as (
         -- Flagged already: locked, not rewritten (pii_internal.flag_subjects says why).
         select t.subject_hash from x join pii_internal.tombstones t on t.subject_hash operator(pg_catalog.=) x.h
         where t.request_id is not null and (t.bucket is not null or x.b is null)
         for key share of t
       ), flagged as (
         insert into pii_internal.tombstones as t (subject_hash, pseudonym, request_id, kind, bucket)
         select x.h, x.p, $7, $8, x.b from x
         where (not $9 or exists (select from pii_internal.tombstones t0 where t0.subject_hash operator(pg_catalog.=) x.h))
           and not exists (select from kept k where k.subject_hash operator(pg_catalog.=) x.h)
         on conflict (subject_hash) do update
           set request_id = coalesce(t.request_id, excluded.request_id), bucket = coalesce(t.bucket, excluded.bucket)
       )
       select pg_catalog.count(*), pg_catalog.count(*) filter (where x.m) from x$q$,
    pii_internal.kind_hash_sql(subj.kind, 'r.s', 'r.k'),
    case when subj.key_is_pii then pii_internal.pseudonym_sql('r.k') else 'null::text' end,
    pii_internal.kind_bucket_sql(subj.kind, 'r.s', 'r.k'));
  begin
    execute stmt into n_subjects, n_matched
      using canonical.found_keys, canonical.found_scopes, pk.inner_key, pk.outer_key, source_rows, matched, rid, subj.kind, true;
  exception when unique_violation then
    get stacked diagnostics violated = constraint_name;
    if violated is distinct from 'tombstones_pkey' then
      raise;
    end if;
    execute stmt into n_subjects, n_matched
      using canonical.found_keys, canonical.found_scopes, pk.inner_key, pk.outer_key, source_rows, matched, rid, subj.kind, false;
  end;
  update pii.requests r set total = n_subjects, duplicates = n_keys - n_subjects, matched = n_matched where r.id = rid;

  if n_subjects >= 10000 then
    -- Chunks start right after commit, long before autovacuum would have looked at the new
    -- rows: without statistics the claim query sorts every pending item instead of
    -- walking the index.
    -- The columns those plans and the guards' prefilter read (and the row counts, which
    -- ANALYZE sets whatever the list): sampling every column, keys and pseudonyms included,
    -- took longer than writing 200,000 items.
    analyze pii_internal.request_items (request_id, status, matched);
    analyze pii_internal.tombstones (subject_hash, bucket, kind, erased_at);
  end if;
  perform pii_internal.enqueue_request_job(rid);
  perform pii_internal.write_audit('request_erasure', rid, pg_catalog.jsonb_build_object(
    'source', source, 'mode', mode, 'subjects', n_subjects, 'matched', n_matched, 'duplicates', n_keys - n_subjects));
  return rid;
end
$$;
comment on function pii_internal.create_request(text[], text[], bigint[], text, text, text, timestamptz, text) is 'Internal. Records a request for subjects of a kind (NULL: the only kind) and its items, flags the subjects and queues the job.';

create or replace function pii.request_erasure(subject_keys text[], request_key text default null, source text default 'api',
                                    scopes text[] default null, mode text default 'erase', due_at timestamptz default null,
                                    kind text default null)
returns uuid
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.create_request(subject_keys, scopes, null, request_key, source, mode, due_at, kind)
$$;
comment on function pii.request_erasure(text[], text, text, text[], text, timestamptz, text) is
$$Records an erasure request for any number of subjects and queues it (graphile-worker job lethe_process_request)
in the caller's transaction: rollback = no request, no job. Subjects are flagged at once (guards act from now).
Idempotent on request_key: the same key returns the same id. due_at defaults to now() + pii.settings.default_due.
A request erases subjects of one kind (kind may be omitted when the install has one).
Example: select pii.request_erasure(array['42', '43'], request_key => 'ticket-1812');
select pii.request_erasure(array['7'], kind => 'staff');$$;

create or replace function pii.request_erasure_from_import(import_id uuid, request_key text default null, source text default 'csv',
                                                mode text default 'erase', due_at timestamptz default null, kind text default null)
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
-- As create_request: the file's rows are aggregated in memory.
set work_mem = '256MB'
as $$
declare
  keys text[];
  scps text[];
  rows_ bigint[];
  rid uuid;
  kinds text[];
  kind_min text;
  kind_max text;
  mixed boolean;
begin
  -- No ORDER BY: each item keeps its subject's lowest row (create_request), and an invalid
  -- key is reported by its lowest row (pii_internal.canonical_input).
  select pg_catalog.array_agg(i.subject_key), pg_catalog.array_agg(i.scope), pg_catalog.array_agg(i.row_number),
         pg_catalog.min(i.kind), pg_catalog.max(i.kind),
         pg_catalog.bool_or(i.scope is null) and pg_catalog.bool_or(i.scope is not null)
    into keys, scps, rows_, kind_min, kind_max, mixed
  from pii.import_rows i where i.import_id = request_erasure_from_import.import_id;
  if keys is null then
    raise exception 'import % has no staged rows', import_id using errcode = '22023';
  end if;
  -- One request is one kind: the file's kind column (one value), or the kind argument.
  if kind_min is not null then
    kinds := array[kind_min];
  end if;
  if kind_min <> kind_max then
    select pg_catalog.array_agg(distinct i.kind) into kinds
    from pii.import_rows i where i.import_id = request_erasure_from_import.import_id and i.kind is not null;
    raise exception 'import %: rows of % kinds (%); a request erases one kind', import_id, pg_catalog.cardinality(kinds), pg_catalog.array_to_string(kinds, ', ')
      using errcode = '22023', hint = 'Split the file by kind, or import each kind with --kind.';
  end if;
  if kind is not null and kinds is not null and kinds[1] <> kind then
    raise exception 'import %: the rows say kind "%", the call says "%"', import_id, kinds[1], kind using errcode = '22023';
  end if;
  if mixed then
    raise exception 'import %: some rows have a scope and some do not', import_id using errcode = '22023';
  end if;
  rid := pii_internal.create_request(keys, case when scps[1] is null then null else scps end, rows_, request_key, source, mode, due_at,
                                     coalesce(kind, kinds[1]));
  delete from pii.import_rows i where i.import_id = request_erasure_from_import.import_id;
  return rid;
end
$$;
comment on function pii.request_erasure_from_import(uuid, text, text, text, timestamptz, text) is
$$Turns the rows COPYed into pii.import_rows under import_id into one erasure request (items remember their CSV
row; duplicates are counted) and removes the staged rows in the same transaction. The kind is the rows' kind column
(one value) or the kind argument (omitted when the install has one kind).
Example: select pii.request_erasure_from_import('2b1e…'::uuid, request_key => 'dpo-2026-11.csv');$$;

-- One chunk: claim pending items, erase the subjects unless an erasure that was not yet
-- committed when the request was filed has erased them (each subject is erased once,
-- however many overlapping requests name it),
-- record residual identifiers, mark items done, drop their raw keys. One transaction.
create or replace function pii.process_request_chunk(request_id uuid, chunk_size integer default null)
returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  req pii.requests;
  size_ integer;
  claimed bytea[];
  keys text[];
  scps text[];
  pseudonyms text[];
  to_erase bytea[];
  erase_keys text[];
  erase_scopes text[];
  now_matched bytea[];
  idents record;
  delete_state jsonb;
  update_state jsonb;
  result record;
  residuals bigint;
begin
  select * into req from pii.requests r where r.id = process_request_chunk.request_id;
  if req.id is null then
    raise exception 'erasure request % does not exist', request_id using errcode = '42704';
  end if;
  if req.status in ('done', 'failed') then
    return 0;
  end if;
  req.kind := coalesce(req.kind, (pii_internal.subject_kind(null)).kind);
  -- Like a guard, before any row is locked: a direct erasure in flight finishes first, so
  -- the two never wait for each other's rows.
  perform pii_internal.wait_for_erasures();
  select coalesce(process_request_chunk.chunk_size, s.chunk_size) into size_ from pii.settings s;
  if size_ < 1 or size_ > 100000 then
    raise exception 'chunk_size must be between 1 and 100000, not %', size_ using errcode = '22023';
  end if;

  select pg_catalog.array_agg(c.subject_hash order by c.subject_hash), pg_catalog.array_agg(c.subject_key order by c.subject_hash),
         pg_catalog.array_agg(c.scope order by c.subject_hash), pg_catalog.array_agg(c.pseudonym order by c.subject_hash)
    into claimed, keys, scps, pseudonyms
  from (select i.subject_hash, i.subject_key, i.scope, i.pseudonym
        from pii_internal.request_items i
        where i.request_id = process_request_chunk.request_id and i.status = 'pending'
        order by i.subject_hash
        limit size_
        for update skip locked) c;
  if claimed is null then
    return 0;
  end if;
  -- Tombstones are locked in hash order (claimed is sorted), so overlapping requests queue
  -- up instead of deadlocking; each is written once, marked erased by this chunk.
  to_erase := pii_internal.mark_erased(claimed, pseudonyms, req.id, req.filed_snapshot, req.kind);
  select coalesce(pg_catalog.array_agg(u.k), '{}'), coalesce(pg_catalog.array_agg(u.s), '{}')
    into erase_keys, erase_scopes
  from unnest(claimed, keys, scps) as u (h, k, s) join unnest(to_erase) as e (h) on e.h = u.h;

  idents := pii_internal.capture_identifiers(erase_keys, erase_scopes, req.kind);
  delete_state := pii_internal.delete_proof_state(req.mode, req.kind);
  update_state := pii_internal.update_proof_state(req.mode, req.kind);
  result := pii_internal.erase_resolved(erase_keys, erase_scopes, req.mode, req.kind);
  perform pii_internal.record_identifier_residuals(req.id, req.mode, idents.current_keys, idents.current_scopes, idents.hashes, idents.identifiers);
  -- Verified as erased, in this transaction (finish_request adds the chunks up). Its DELETE
  -- and UPDATE statements are proven (pii_internal.proven_deleted, proven_updated) for the
  -- subjects it erased; those an earlier erasure erased are checked.
  residuals := pii_internal.chunk_residuals(req.id, req.mode, req.kind, keys, scps, claimed, pseudonyms,
    case when pg_catalog.cardinality(to_erase) = pg_catalog.cardinality(claimed)
         then pii_internal.proven_deleted(delete_state) || pii_internal.proven_updated(update_state, result.table_names, result.rows_affected)
         else '{}' end);

  -- Index lookups by (request_id, subject_hash) whatever the planner knows of the tables.
  select pg_catalog.array_agg(u.h) into now_matched
  from unnest(claimed, keys, scps) as u (h, k, s)
  join unnest(result.matched) as m (x) on m.x = coalesce(u.s, '') || pg_catalog.chr(31) || u.k;
  update pii_internal.request_items i
     set status = 'done', subject_key = null, scope = null, processed_at = pg_catalog.now(), error = null,
         erased_by = (select tb.request_id from pii_internal.tombstones tb where tb.subject_hash = i.subject_hash)
   where i.request_id = req.id and i.subject_hash = any (claimed);
  update pii_internal.request_items i set matched = true
   where i.request_id = req.id and i.subject_hash = any (now_matched) and not i.matched;
  -- Erased counts subjects erased, never keys that matched no subject. The request's one row
  -- is written once, here, at the end (running from the first chunk, started at its start:
  -- now() is the transaction's): its lock is held until commit, and a chunk running beside
  -- this one (parallel chunks) waits for it only here, not for the whole of this chunk.
  update pii.requests r
     set status = case when r.status operator(pg_catalog.=) 'queued' then 'running' else r.status end,
         started_at = coalesce(r.started_at, pg_catalog.now()),
         erased = r.erased + (select pg_catalog.count(*) from pii_internal.request_items i
                              where i.request_id = req.id and i.subject_hash = any (claimed) and i.matched),
         processed = r.processed + pg_catalog.cardinality(claimed),
         held_until = greatest(r.held_until, result.held_until),
         rows_affected = pii_internal.add_row_counts(r.rows_affected,
           (select pg_catalog.jsonb_object_agg(u.t, u.n) from unnest(result.table_names, result.rows_affected) as u (t, n))),
         shared_kept = pii_internal.add_row_counts(r.shared_kept, pii_internal.shared_kept_counts(result.table_names, result.shared_kept))
   where r.id = req.id;
  perform pii_internal.write_audit('erase_chunk', req.id, pg_catalog.jsonb_build_object(
    'items', pg_catalog.cardinality(claimed), 'erased_now', pg_catalog.cardinality(to_erase), 'residuals', residuals,
    'rows', (select pg_catalog.jsonb_object_agg(u.t, u.n) from unnest(result.table_names, result.rows_affected) as u (t, n)),
    'shared_kept', pii_internal.shared_kept_counts(result.table_names, result.shared_kept)));
  return pg_catalog.cardinality(claimed);
end
$$;
comment on function pii.process_request_chunk(uuid, integer) is
$$Worker step: erases up to chunk_size pending subjects of a request (FOR UPDATE SKIP LOCKED), set-based, all or
nothing; returns how many items it processed (0: nothing left). Example: select pii.process_request_chunk('…'::uuid);$$;

create or replace function pii_internal.announce_request(req pii.requests) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  p json := pg_catalog.json_build_object('requestId', req.id, 'status', req.status, 'total', req.total,
                                         'matched', req.matched, 'erased', req.erased, 'failed', req.failed,
                                         'residuals', req.residual_count);
begin
  perform pg_catalog.pg_notify('pii_erasure', p::text);
  -- No graphile-worker schema (psql-only install, no worker yet): the NOTIFY is the announcement.
  -- The job only when the application opted in: nothing would run it otherwise, and the
  -- queue would keep one per request forever.
  if pg_catalog.to_regnamespace('graphile_worker') is not null
     and (select s.erasure_completed_jobs from pii.settings s) then
    perform graphile_worker.add_job('erasure_completed', p, job_key => 'lethe:completed:' || req.id);
  end if;
end
$$;
comment on function pii_internal.announce_request(pii.requests) is 'Internal. NOTIFY pii_erasure and, when pii.settings.erasure_completed_jobs is on, an erasure_completed job for a finished request (ids and counts only).';

create or replace function pii.finish_request(request_id uuid) returns text
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  req pii.requests;
  residuals integer;
  chunks_clean boolean;
  failed_items bigint;
begin
  select * into req from pii.requests r where r.id = finish_request.request_id for update;
  if req.id is null then
    raise exception 'erasure request % does not exist', request_id using errcode = '42704';
  end if;
  if req.status in ('done', 'failed')
     or exists (select from pii_internal.request_items i where i.request_id = req.id and i.status = 'pending') then
    return req.status;
  end if;
  -- Each chunk verified its subjects as it erased them (the residuals of its erase_chunk
  -- audit entry). Only when a chunk found traces (they may have been cleaned up since, and
  -- the request retried) or did not verify (before this version) is the whole request
  -- verified again here. Rows a legal hold keeps are reported (held until …) but are not residue.
  select coalesce(pg_catalog.bool_and(a.details operator(pg_catalog.?) 'residuals')
                  and pg_catalog.sum((a.details operator(pg_catalog.->>) 'residuals')::bigint) operator(pg_catalog.=) 0, false)
    into chunks_clean
  from pii.audit a where a.request_id = req.id and a.action = 'erase_chunk';
  if chunks_clean then
    residuals := 0;
  else
    select pg_catalog.count(*) into residuals from pii.verify_erasure(req.id) v where v.detail not like 'held until %';
  end if;
  select pg_catalog.count(*) into failed_items from pii_internal.request_items i where i.request_id = req.id and i.status = 'failed';
  update pii.requests r
     set status = case when failed_items > 0 or residuals > 0 then 'failed' else 'done' end,
         finished_at = pg_catalog.now(), verified_at = pg_catalog.now(), residual_count = residuals, failed = failed_items,
         started_at = coalesce(r.started_at, pg_catalog.now()),
         error = case when failed_items > 0 then coalesce(r.error, failed_items || ' item(s) failed')
                      when residuals > 0 then 'verification found ' || residuals || ' residual trace(s): see pii.verify_erasure' end
   where r.id = req.id
  returning * into req;
  perform pii_internal.announce_request(req);
  perform pii_internal.write_audit('request_finished', req.id, pg_catalog.jsonb_build_object(
    'status', req.status, 'total', req.total, 'matched', req.matched, 'erased', req.erased, 'failed', req.failed,
    'residuals', residuals, 'rows', req.rows_affected));
  return req.status;
end
$$;
comment on function pii.finish_request(uuid) is
$$Worker step after the last chunk: stores the verification (each chunk verified its subjects as it erased them; when a
chunk found traces, pii.verify_erasure checks the whole request again), sets the status
(done, or failed when items failed or traces remain), emits NOTIFY pii_erasure and, when pii.settings.erasure_completed_jobs
is on, queues an erasure_completed job.
Idempotent; returns the status. Example: select pii.finish_request('…'::uuid);$$;

create or replace function pii.fail_request(request_id uuid, error text) returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  req pii.requests;
  -- Worker errors are Postgres messages (no DETAIL, which can echo values); keep them short.
  msg text := pg_catalog.left(coalesce(error, 'unknown error'), 500);
begin
  update pii_internal.request_items i set status = 'failed', error = msg
  where i.request_id = fail_request.request_id and i.status = 'pending';
  update pii.requests r
     set status = 'failed', error = msg, finished_at = pg_catalog.now(),
         failed = (select pg_catalog.count(*) from pii_internal.request_items i where i.request_id = r.id and i.status = 'failed')
   where r.id = fail_request.request_id and r.status in ('queued', 'running')
  returning * into req;
  if req.id is null then
    return;
  end if;
  perform pii_internal.announce_request(req);
  perform pii_internal.write_audit('request_failed', req.id, pg_catalog.jsonb_build_object('failed', req.failed, 'error', msg));
end
$$;
comment on function pii.fail_request(uuid, text) is 'Worker step when a chunk fails for good: pending items and the request become failed, with the error. Example: select pii.fail_request(''…''::uuid, ''deadlock detected'');';

create or replace function pii.retry_request(request_id uuid) returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  update pii_internal.request_items i set status = 'pending', error = null
  where i.request_id = retry_request.request_id and i.status = 'failed';
  -- Also a request that failed verification only: finishing it again re-verifies.
  update pii.requests r set status = 'running', error = null, finished_at = null, failed = 0
  where r.id = retry_request.request_id and r.status = 'failed';
  if not found then
    raise exception 'erasure request % is not failed', request_id using errcode = '55000';
  end if;
  perform pii_internal.enqueue_request_job(request_id);
  perform pii_internal.write_audit('retry_request', request_id, '{}'::jsonb);
end
$$;
comment on function pii.retry_request(uuid) is 'Puts a failed request''s failed items back in the queue. Example: select pii.retry_request(''…''::uuid);';

create or replace function pii.resume_requests() returns integer
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  with open_ as (
    select r.id from pii.requests r where r.status in ('queued', 'running')
  )
  select pg_catalog.count(*)::integer from open_ o cross join lateral pii_internal.enqueue_request_job(o.id) as j
$$;
comment on function pii.resume_requests() is 'Re-queues the job of every open request (after a worker crash a job may stay locked until it times out). Workers call it at start. Example: select pii.resume_requests();';

create or replace function pii.request_status(request_id uuid)
returns table (id uuid, status text, mode text, source text, total bigint, matched bigint, unmatched bigint,
               erased bigint, failed bigint, duplicates bigint, progress numeric, requested_at timestamptz,
               started_at timestamptz, finished_at timestamptz, due_at timestamptz, verified_at timestamptz,
               residual_count integer, rows_affected jsonb, error text, shared_kept jsonb, kind text)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query
    select r.id, r.status, r.mode, r.source, r.total, r.matched, r.total - r.matched, r.erased, r.failed, r.duplicates,
           case when r.total = 0 then 1::numeric else pg_catalog.round((r.processed + r.failed)::numeric / r.total, 4) end,
           r.requested_at, r.started_at, r.finished_at, r.due_at, r.verified_at, r.residual_count, r.rows_affected, r.error, r.shared_kept, r.kind
    from pii.requests r where r.id = request_status.request_id;
  if not found then
    raise exception 'erasure request % does not exist', request_id using errcode = '42704';
  end if;
end
$$;
comment on function pii.request_status(uuid) is
$$Status of a request: queued | running | done | failed, its subject kind, with total, matched, unmatched, erased, failed, duplicates,
progress (0-1), timestamps, due date, verification result, rows changed per table and rows kept per table because
others share them (shared_kept: an address staff or other customers also reference).
Example: select * from pii.request_status('…'::uuid);$$;

create or replace function pii.request_items(request_id uuid)
returns table (subject_hash text, source_row bigint, matched boolean, status text, erased_by uuid, error text)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.encode(i.subject_hash, 'hex'), i.source_row, i.matched, i.status, i.erased_by, i.error
  from pii_internal.request_items i where i.request_id = request_items.request_id
  order by i.source_row nulls last, i.subject_hash
$$;
comment on function pii.request_items(uuid) is
$$A request's subjects by keyed hash (never the key), with their CSV row, whether they matched a subject row,
status, and the request that erased them. Example: select * from pii.request_items('…'::uuid) where not matched;$$;

-- One page of a request's items in subject-hash order, after the last hash of the previous
-- page (keyset: each page is one index range, however many items the request has).
create or replace function pii.request_items_page(request_id uuid, after_hash text default null, page_size integer default 50,
                                                  only_items text default null)
returns table (subject_hash text, source_row bigint, matched boolean, status text, erased_by uuid, error text)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  after bytea;
begin
  if page_size is null or page_size < 1 or page_size > 1000 then
    raise exception 'page_size must be between 1 and 1000, not %', coalesce(page_size::text, 'NULL') using errcode = '22023';
  end if;
  if only_items is not null and only_items not in ('unmatched', 'failed') then
    raise exception 'only_items must be NULL (all items), unmatched or failed, not "%"', only_items using errcode = '22023';
  end if;
  if after_hash is not null then
    if after_hash !~ '^[0-9a-f]{64}$' then
      raise exception 'after_hash must be a subject hash (64 lowercase hex digits)' using errcode = '22023';
    end if;
    after := pg_catalog.decode(after_hash, 'hex');
  end if;
  -- One static statement per filter, so that each walks its own index.
  if only_items is null then
    return query select pg_catalog.encode(i.subject_hash, 'hex'), i.source_row, i.matched, i.status, i.erased_by, i.error
      from pii_internal.request_items i
      where i.request_id = request_items_page.request_id and (after is null or i.subject_hash > after)
      order by i.subject_hash limit page_size;
  elsif only_items = 'unmatched' then
    return query select pg_catalog.encode(i.subject_hash, 'hex'), i.source_row, i.matched, i.status, i.erased_by, i.error
      from pii_internal.request_items i
      where i.request_id = request_items_page.request_id and not i.matched and (after is null or i.subject_hash > after)
      order by i.subject_hash limit page_size;
  else
    return query select pg_catalog.encode(i.subject_hash, 'hex'), i.source_row, i.matched, i.status, i.erased_by, i.error
      from pii_internal.request_items i
      where i.request_id = request_items_page.request_id and i.status = 'failed' and (after is null or i.subject_hash > after)
      order by i.subject_hash limit page_size;
  end if;
end
$$;
comment on function pii.request_items_page(uuid, text, integer, text) is
$$One page of a request's items (as pii.request_items(): keyed hashes, never keys), in subject-hash order after
after_hash (the last hash of the previous page; NULL: the first page), at most page_size (1-1000), all of them or
only_items => 'unmatched' or 'failed'. Each page reads one index range, however large the request.
Example: select * from pii.request_items_page('…'::uuid, only_items => 'failed');$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.request_erasure(text[], text, text, text[], text, timestamptz, text),
  pii.request_erasure_from_import(uuid, text, text, text, timestamptz, text), pii.process_request_chunk(uuid, integer),
  pii.finish_request(uuid), pii.fail_request(uuid, text), pii.retry_request(uuid), pii.resume_requests() to pii_operator;
grant execute on function pii.request_status(uuid), pii.request_items(uuid), pii.request_items_page(uuid, text, integer, text)
  to pii_operator, pii_auditor;
