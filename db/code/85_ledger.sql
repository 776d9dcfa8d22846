-- Repeatable code: the erasure ledger, the hash chains over it and pii.audit, restore_check
-- (F30, F37). State in db/migrations/0008_erasure_ledger.sql.
--  * Hash chains: every pii.audit row and every pii.erasure_ledger entry carries the
--    keyed hash of the previous entry (prev_hash) and of its own content (entry_hash);
--    pii.verify_audit_chain() finds the first missing, altered or unlinked entry.
--  * Ledger: a subject whose tombstone is marked erased is held in
--    pii_internal.erasure_ledger_pending until the erase_subjects / erase_chunk audit row of the
--    same transaction says how (mode, request); then it is appended to the ledger.
--    pii.allow_return appends a 'return' entry, so a restore does not erase a person who
--    legitimately came back.
--  * pii.restore_check(entries): the external ledger against a restored database.

-- Keyed fingerprint of the install's HMAC secret: tells which secret made a hash, reveals
-- nothing about it. A restore brings the backup's secret (and fingerprint) back.
create or replace function pii.secret_id() returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.left(pg_catalog.encode(pii_internal.hmac('lethe secret id'), 'hex'), 16)
$$;
comment on function pii.secret_id() is 'Fingerprint of the install''s HMAC secret (16 hex digits of a keyed hash of a constant): which secret made a ledger entry''s hashes. Example: select pii.secret_id();';

create or replace function pii_internal.chain_hash(chain text, content jsonb) returns bytea
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac(chain operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) content::text)
$$;
comment on function pii_internal.chain_hash(text, jsonb) is 'Internal. Keyed hash of a chain entry''s canonical content.';

-- The same as SQL text over a content expression, reading the install key in the statement
-- (see pii_internal.hmac_sql): set-based statements hash in C, not one function call
-- (and one query of pii_internal.secret) per entry.
create or replace function pii_internal.chain_hash_sql(chain text, content_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac_sql(pg_catalog.format('%L operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) (%s)::text',
                                                 chain, content_sql))
$$;
comment on function pii_internal.chain_hash_sql(text, text) is 'Internal. SQL text computing pii_internal.chain_hash(chain, content); reads the install key in the statement, never bound.';

-- Canonical content (jsonb text is normalised; times as epoch, bytes as hex, so neither
-- TimeZone, DateStyle nor bytea_output changes it; extra_float_digits pinned, because at 0
-- or below an epoch with microseconds prints rounded to 15 digits).
create or replace function pii_internal.audit_entry_content(a pii.audit) returns jsonb
language sql immutable
set search_path = pg_catalog, pii, pg_temp
set extra_float_digits = 1
as $$
  select pg_catalog.jsonb_build_array(a.chain_seq, a.id, pg_catalog.date_part('epoch'::text, a.at)::text, a.actor, a.application,
                                      a.action, a.request_id, pg_catalog.encode(a.subject_hash, 'hex'), a.details)
$$;
comment on function pii_internal.audit_entry_content(pii.audit) is 'Internal. What an audit row''s entry_hash covers: every column but the chain links.';

create or replace function pii_internal.ledger_entry_content(seq bigint, subject_hash bytea, identifier_hashes bytea[], kind text, scoped boolean,
                                                    mode text, request_id uuid, erased_at timestamptz, secret_id text)
returns jsonb
language sql immutable
set search_path = pg_catalog, pii, pg_temp
set extra_float_digits = 1
as $$
  select pg_catalog.jsonb_build_array(seq, pg_catalog.encode(subject_hash, 'hex'),
                                      case when identifier_hashes is not null then
                                        (select pg_catalog.array_agg(pg_catalog.encode(i, 'hex')) from pg_catalog.unnest(identifier_hashes) i) end,
                                      kind, scoped, mode, request_id, pg_catalog.date_part('epoch'::text, erased_at)::text, secret_id)
$$;
comment on function pii_internal.ledger_entry_content(bigint, bytea, bytea[], text, boolean, text, uuid, timestamptz, text) is 'Internal. What a ledger entry''s entry_hash covers: every column but the chain links.';

-- A ledger entry as one JSON line of the external copy (and what restore_check reads back).
create or replace function pii_internal.ledger_entry_json(l pii.erasure_ledger) returns jsonb
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.jsonb_build_object(
    'seq', l.seq, 'subject_hash', pg_catalog.encode(l.subject_hash, 'hex'),
    'identifier_hashes', (select pg_catalog.array_agg(pg_catalog.encode(i, 'hex')) from pg_catalog.unnest(l.identifier_hashes) i),
    'kind', l.kind, 'scoped', l.scoped, 'mode', l.mode, 'request_id', l.request_id,
    'erased_at', pg_catalog.to_char(pg_catalog.timezone('UTC', l.erased_at), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    'secret_id', l.secret_id, 'prev_hash', pg_catalog.encode(l.prev_hash, 'hex'), 'entry_hash', pg_catalog.encode(l.entry_hash, 'hex'))
$$;
comment on function pii_internal.ledger_entry_json(pii.erasure_ledger) is 'Internal. A ledger entry as the JSON object written to the external ledger files.';

-- Audit rows: numbered and linked under the head's row lock. The audit row of an erasure
-- (erase_subjects, erase_chunk) or of allow_return says how its subjects went: they are
-- appended to the ledger first, so the audit head is locked only for this one row (not
-- while the ledger's entries are hashed), and every append takes the ledger head before
-- the audit head, as restore_check does.
create or replace function pii_internal.chain_audit_row() returns trigger
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  head pii_internal.chain_heads;
begin
  if new.action operator(pg_catalog.=) 'allow_return' then
    perform pii_internal.append_erasure_ledger('return', null, new.subject_hash);
  elsif new.action in ('erase_subjects', 'erase_chunk') then
    perform pii_internal.append_erasure_ledger(
      case when new.action operator(pg_catalog.=) 'erase_subjects' then new.details operator(pg_catalog.->>) 'mode'
           else (select r.mode from pii.requests r where r.id operator(pg_catalog.=) new.request_id) end,
      new.request_id);
  end if;
  select * into head from pii_internal.chain_heads h where h.chain operator(pg_catalog.=) 'audit' for update;
  new.chain_seq := head.seq operator(pg_catalog.+) 1;
  new.prev_hash := head.last_hash;
  new.secret_id := pii.secret_id();
  new.entry_hash := pii_internal.chain_hash('audit', pii_internal.audit_entry_content(new));
  update pii_internal.chain_heads h set seq = new.chain_seq, last_hash = new.entry_hash where h.chain operator(pg_catalog.=) 'audit';
  return new;
end
$$;
comment on function pii_internal.chain_audit_row() is 'Internal. BEFORE INSERT trigger on pii.audit: appends the ledger entries of an erasure''s (or allow_return''s) audit row, then gives the row its chain number, the previous entry''s hash and its own.';

create or replace trigger audit_chain before insert on pii.audit
  for each row execute function pii_internal.chain_audit_row();
-- The ledger used to be appended by an AFTER trigger, under the audit head's lock.
drop trigger if exists audit_erasure_ledger on pii.audit;
drop function if exists pii_internal.ledger_audited_erasure();

-- Appends one chained entry per subject that this transaction's statements marked erased
-- (pii_internal.erasure_ledger_pending, moved in the same statement), or one 'return' entry
-- for returned_hash. One statement, set-based, under the ledger head's lock. Each entry's
-- content is the text of pii_internal.ledger_entry_content (jsonb's canonical output, which
-- pii.verify_audit_chain re-hashes) written directly: what every entry of the append shares
-- (mode, request, secret id; kind and scoped per kind) is rendered once, not per entry, and
-- no jsonb is built per entry. Identifier tombstones are looked up only when there are any.
create or replace function pii_internal.append_erasure_ledger(entry_mode text, entry_request_id uuid, returned_hash bytea default null)
returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
set extra_float_digits = 1
-- Two sorts of every entry (by hash, then by seq for the links): in memory, not on disk.
set work_mem = '64MB'
as $$
declare
  head pii_internal.chain_heads;
  sid text;
  appended bigint;
begin
  if returned_hash is null
     and not exists (select from pii_internal.erasure_ledger_pending p where p.xact operator(pg_catalog.=) pg_catalog.pg_current_xact_id()) then
    return 0;
  end if;
  sid := pii.secret_id();
  select * into head from pii_internal.chain_heads h where h.chain operator(pg_catalog.=) 'erasure_ledger' for update;
  execute pg_catalog.format(
    $q$with moved as (
         delete from pii_internal.erasure_ledger_pending p
         where $1 is null and p.xact operator(pg_catalog.=) pg_catalog.pg_current_xact_id()
         returning p.subject_hash, p.erased_at, p.kind
       ), subjects as (
         select m.subject_hash as h, m.erased_at as t, m.kind as k from moved m
         union all
         -- A subject allowed back: its tombstones are gone (no kind, no identifiers).
         select $1, pg_catalog.now(), null::text where $1 is not null
       ), kinds as (
         -- Scoped: whether the subject table of the subject's own kind is.
         select s.kind, s.scope_attnum is not null as sc,
                pg_catalog.to_json(s.kind)::text operator(pg_catalog.||) ', ' operator(pg_catalog.||) (s.scope_attnum is not null)::text as kind_text
         from pii.subject_table s
       ), numbered as (
         select $2 operator(pg_catalog.+) pg_catalog.row_number() over (order by s.h) as seq, s.h, s.t, s.k,
                -- The subject's identifier tombstones: a restore re-applies them.
                case when $7 then (select pg_catalog.array_agg(it.identifier_hash order by it.identifier_hash)
                                   from pii_internal.identifier_tombstones it where it.subject_hash operator(pg_catalog.=) s.h) end as ih
         from subjects s
       ), described as (
         select n.seq, n.h, n.t, n.k, n.ih, coalesce(k.sc, false) as sc,
                -- = pii_internal.ledger_entry_content(seq, h, ih, k, sc, $4, $5, t, $6)::text
                pg_catalog.format('[%%s, "%%s", %%s, %%s%%s%%s%%s', n.seq, pg_catalog.encode(n.h, 'hex'),
                  case when n.ih is null then 'null'
                       else (select '[' operator(pg_catalog.||) pg_catalog.string_agg('"' operator(pg_catalog.||) pg_catalog.encode(u.i, 'hex') operator(pg_catalog.||) '"', ', ' order by u.o) operator(pg_catalog.||) ']'
                             from unnest(n.ih) with ordinality as u (i, o)) end,
                  coalesce(k.kind_text, coalesce(pg_catalog.to_json(n.k)::text, 'null') operator(pg_catalog.||) ', false'),
                  $8::text, pg_catalog.date_part('epoch'::text, n.t)::text, $9::text) as content
         from numbered n left join kinds k on k.kind operator(pg_catalog.=) n.k
       ), hashed as (
         -- OFFSET 0: the insert reads entry_hash twice (the row's and lag's); a subquery
         -- merged into it would hash each entry twice.
         select d.*, %s as entry_hash from described d offset 0
       ), ins as (
         insert into pii.erasure_ledger (seq, subject_hash, identifier_hashes, kind, scoped, mode, request_id, erased_at, secret_id, prev_hash, entry_hash)
         select x.seq, x.h, x.ih, x.k, x.sc, $4, $5, x.t, $6, pg_catalog.lag(x.entry_hash, 1, $3) over (order by x.seq), x.entry_hash
         from hashed x
         returning erasure_ledger.seq, erasure_ledger.entry_hash
       ), moved_head as (
         update pii_internal.chain_heads h set seq = l.seq, last_hash = l.entry_hash
         from (select i.seq, i.entry_hash from ins i order by i.seq desc limit 1) l
         where h.chain operator(pg_catalog.=) 'erasure_ledger'
       )
       select pg_catalog.count(*) from ins$q$,
    pii_internal.chain_hash_sql('erasure_ledger', 'd.content'))
    into appended
    using returned_hash, head.seq, head.last_hash, entry_mode, entry_request_id, sid,
          exists (select from pii_internal.identifier_tombstones),
          -- What follows scoped in every entry's content, up to the time: mode and request.
          pg_catalog.format(', %s, %s, "', pg_catalog.to_json(entry_mode), coalesce(pg_catalog.to_json(entry_request_id)::text, 'null')),
          -- And after the time: the secret id.
          pg_catalog.format('", %s]', pg_catalog.to_json(sid));
  return appended;
end
$$;
comment on function pii_internal.append_erasure_ledger(text, uuid, bytea) is 'Internal. Moves the subjects this transaction marked erased (pii_internal.erasure_ledger_pending) into pii.erasure_ledger, one chained entry each (one statement, under the ledger head''s lock); with returned_hash, one ''return'' entry for that subject instead. Mode erase, delete or return; request NULL for direct calls.';

-- Tombstones marked erased by this statement (erased_xact set to this transaction).
create or replace function pii_internal.hold_erased_for_ledger() returns trigger
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  -- New rows only: a join with old_rows (no statistics on transition tables) can become a
  -- nested loop over 50,000 x 50,000 rows. A second erasure in the same transaction after
  -- its audit row is ledgered again, which is what it is.
  insert into pii_internal.erasure_ledger_pending (xact, subject_hash, erased_at, kind)
  select pg_catalog.pg_current_xact_id(), n.subject_hash, n.erased_at, n.kind
  from new_rows n
  where n.erased_xact operator(pg_catalog.=) pg_catalog.pg_current_xact_id() and n.erased_at is not null;
  return null;
end
$$;
comment on function pii_internal.hold_erased_for_ledger() is 'Internal. AFTER INSERT and AFTER UPDATE statement triggers on pii_internal.tombstones: subjects marked erased (with their kind) wait in pii_internal.erasure_ledger_pending for their audit row.';

create or replace trigger tombstones_erasure_ledger after update on pii_internal.tombstones
  referencing new table as new_rows
  for each statement execute function pii_internal.hold_erased_for_ledger();
-- Tombstones inserted already erased (pii_internal.mark_erased): one write, not two.
create or replace trigger tombstones_erasure_ledger_insert after insert on pii_internal.tombstones
  referencing new table as new_rows
  for each statement execute function pii_internal.hold_erased_for_ledger();

create or replace trigger erasure_ledger_no_update_delete before update or delete on pii.erasure_ledger
  for each row execute function pii_internal.audit_is_append_only();
create or replace trigger erasure_ledger_no_truncate before truncate on pii.erasure_ledger
  for each statement execute function pii_internal.audit_is_append_only();
alter table pii.erasure_ledger enable always trigger erasure_ledger_no_update_delete;
alter table pii.erasure_ledger enable always trigger erasure_ledger_no_truncate;

create or replace function pii.verify_audit_chain()
returns table (chain text, seq bigint, problem text)
language plpgsql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
begin
  -- Placeholders, not format(): the query has format() calls of its own. $1 is this
  -- database's secret id (hashing in C, set-based; the key is read in the statement).
  return query execute pg_catalog.replace(pg_catalog.replace($q$
  with links as (
    -- Entries made under another secret (before a rotation) can be linked, not re-hashed.
    select 'audit'::text as chain, a.chain_seq as seq, a.prev_hash, a.entry_hash, a.secret_id,
           case when a.secret_id operator(pg_catalog.=) $1 then {audit_hash} else a.entry_hash end as expected_hash
    from pii.audit a where a.chain_seq is not null
    union all
    select 'erasure_ledger', l.seq, l.prev_hash, l.entry_hash, l.secret_id,
           case when l.secret_id operator(pg_catalog.=) $1 then {ledger_hash} else l.entry_hash end
    from pii.erasure_ledger l
  ), ordered as (
    select k.*, pg_catalog.lag(k.seq) over w as prev_seq, pg_catalog.lag(k.entry_hash) over w as prev_entry_hash,
           -- A rotation changes the secret once, going forward: an entry claiming an older
           -- secret after entries made with this one is hiding from the re-hash.
           coalesce(pg_catalog.bool_or(k.secret_id operator(pg_catalog.=) $1)
                      over (w rows between unbounded preceding and 1 preceding), false) as current_secret_before
    from links k window w as (partition by k.chain order by k.seq)
  ), tails as (
    select distinct on (o.chain) o.chain, o.seq, o.entry_hash from ordered o order by o.chain, o.seq desc
  ), problems as (
    select o.chain, o.seq, case
      when o.seq operator(pg_catalog.<>) (coalesce(o.prev_seq, 0) operator(pg_catalog.+) 1)
        then pg_catalog.format('entries %s to %s are missing', coalesce(o.prev_seq, 0) operator(pg_catalog.+) 1, o.seq operator(pg_catalog.-) 1)
      when o.entry_hash is distinct from o.expected_hash then 'entry altered: its hash does not match its content'
      when o.current_secret_before and o.secret_id is distinct from $1
        then 'entry claims another HMAC secret after entries made with this database''s'
      when o.prev_hash is distinct from o.prev_entry_hash then 'broken link: prev_hash is not the previous entry''s hash'
    end as problem
    from ordered o
    union all
    select 'audit', null, pg_catalog.format('audit row %s is outside the chain', a.id) from pii.audit a where a.chain_seq is null
    union all
    select h.chain, h.seq, case
      when coalesce(t.seq, 0) operator(pg_catalog.<>) h.seq
        then pg_catalog.format('entries %s to %s are missing (the head is at %s)', coalesce(t.seq, 0) operator(pg_catalog.+) 1, h.seq, h.seq)
      when t.entry_hash is distinct from h.last_hash then 'the last entry is not the one the head recorded'
    end
    from pii_internal.chain_heads h left join tails t on t.chain operator(pg_catalog.=) h.chain
  )
  select distinct on (p.chain) p.chain, p.seq, p.problem
  from problems p where p.problem is not null
  order by p.chain, p.seq nulls first$q$,
    '{audit_hash}', pii_internal.chain_hash_sql('audit', 'pii_internal.audit_entry_content(a)')),
    '{ledger_hash}', pii_internal.chain_hash_sql('erasure_ledger',
      'pii_internal.ledger_entry_content(l.seq, l.subject_hash, l.identifier_hashes, l.kind, l.scoped, l.mode, l.request_id, l.erased_at, l.secret_id)'))
    using pii.secret_id(), null::text, null::bytea, null::bytea;
end
$$;
comment on function pii.verify_audit_chain() is
$$The first broken or missing link of each hash chain (audit, erasure_ledger): a deleted, altered, re-linked or
unchained entry, or entries missing at the end. Empty result = both chains intact. It detects rows removed or changed
even with the append-only triggers disabled; a rewrite of the whole chain needs the HMAC secret (compare with the
external ledger copy). Example: select * from pii.verify_audit_chain();$$;

-- What the worker's external copy reads: entries after a sequence number, as JSON lines.
create or replace function pii.ledger_entries_after(after_seq bigint, max_entries integer default 10000)
returns table (seq bigint, entry jsonb)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select l.seq, pii_internal.ledger_entry_json(l) from pii.erasure_ledger l
  where l.seq operator(pg_catalog.>) after_seq
  order by l.seq limit least(greatest(max_entries, 1), 100000)
$$;
comment on function pii.ledger_entries_after(bigint, integer) is 'Ledger entries after a sequence number, as the JSON objects of the external copy (keyed hashes only). Example: select * from pii.ledger_entries_after(0, 100);';

create or replace function pii.record_ledger_export(exported_seq bigint, target text, error text default null) returns void
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  update pii_internal.ledger_export e set
    exported_seq = case when error is null then record_ledger_export.exported_seq else e.exported_seq end,
    exported_at = case when error is null then pg_catalog.now() else e.exported_at end,
    target = record_ledger_export.target,
    last_error = pg_catalog.left(error, 500),
    last_error_at = case when error is null then e.last_error_at else pg_catalog.now() end
$$;
comment on function pii.record_ledger_export(bigint, text, text) is 'Worker step: records how far the external ledger copy got, or why it failed (the error clears on the next success). Example: select pii.record_ledger_export(120, ''/backup/ledger'');';

create or replace function pii.ledger_status()
returns table (ledger_seq bigint, exported_seq bigint, unexported bigint, oldest_unexported_at timestamptz, target text,
               last_error text, last_error_at timestamptz, unledgered bigint)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select h.seq, e.exported_seq, h.seq operator(pg_catalog.-) e.exported_seq,
         (select l.erased_at from pii.erasure_ledger l where l.seq operator(pg_catalog.=) (e.exported_seq operator(pg_catalog.+) 1)),
         e.target, e.last_error, e.last_error_at,
         (select pg_catalog.count(*) from pii_internal.erasure_ledger_pending p)
  from pii_internal.chain_heads h, pii_internal.ledger_export e
  where h.chain operator(pg_catalog.=) 'erasure_ledger'
$$;
comment on function pii.ledger_status() is
$$Is the ledger safe outside the database? Entries so far, entries the external copy holds, how many are not copied
yet and since when, the copy's last error, and erasures that never reached the ledger (unledgered > 0 is a defect).
Example: select * from pii.ledger_status();$$;

-- The external copy's JSON entries as ledger rows, validated; NULL-free errors name the
-- entry by position, never by content. One pass over the entries (each read once into a
-- record), and no bounded repetition in the patterns: PostgreSQL's regex engine took ~12 us
-- for `^[0-9a-f]{64}$`, 2 us for `^[0-9a-f]+$` and a length check.
create or replace function pii_internal.parse_ledger_entries(entries jsonb) returns pii.erasure_ledger[]
language plpgsql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  bad bigint;
  parsed pii.erasure_ledger[];
begin
  if entries is null or pg_catalog.jsonb_typeof(entries) operator(pg_catalog.<>) 'array' then
    raise exception 'entries must be a JSON array of ledger entries' using errcode = '22023';
  end if;
  -- The rows are built only from entries that passed (FILTER is checked before the
  -- aggregate's arguments are computed), so a malformed one never reaches a cast.
  select pg_catalog.min(v.i) filter (where not v.ok),
         pg_catalog.array_agg(row(v.seq::bigint, pg_catalog.decode(v.subject_hash, 'hex'),
           case when v.identifier_hashes is not null then
             (select pg_catalog.array_agg(pg_catalog.decode(h.h, 'hex'))
              from pg_catalog.jsonb_array_elements_text(v.identifier_hashes) as h (h)) end,
           v.kind, v.scoped::boolean, v.mode, v.request_id::uuid, v.erased_at::timestamptz, v.secret_id,
           pg_catalog.decode(v.prev_hash, 'hex'), pg_catalog.decode(v.entry_hash, 'hex'))::pii.erasure_ledger
           order by v.seq::bigint) filter (where v.ok)
    into bad, parsed
  from (select x.i, r.*, coalesce(
               pg_catalog.jsonb_typeof(x.e) operator(pg_catalog.=) 'object'
           and pg_catalog.length(r.seq) operator(pg_catalog.<=) 18 and r.seq operator(pg_catalog.~) '^[1-9][0-9]*$'
           and pg_catalog.length(r.subject_hash) operator(pg_catalog.=) 64 and r.subject_hash operator(pg_catalog.~) '^[0-9a-f]+$'
           and pg_catalog.length(r.entry_hash) operator(pg_catalog.=) 64 and r.entry_hash operator(pg_catalog.~) '^[0-9a-f]+$'
           -- prev_hash, request_id and identifier_hashes may be JSON null, never absent.
           and x.e operator(pg_catalog.?) 'prev_hash'
           and (r.prev_hash is null
                or (pg_catalog.length(r.prev_hash) operator(pg_catalog.=) 64 and r.prev_hash operator(pg_catalog.~) '^[0-9a-f]+$'))
           and r.mode in ('erase', 'delete', 'return')
           and r.erased_at operator(pg_catalog.~) '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$'
           and pg_catalog.length(r.secret_id) operator(pg_catalog.=) 16 and r.secret_id operator(pg_catalog.~) '^[0-9a-f]+$'
           and x.e operator(pg_catalog.?) 'request_id'
           and (r.request_id is null
                or (pg_catalog.length(r.request_id) operator(pg_catalog.=) 36
                    and r.request_id operator(pg_catalog.~) '^[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$'
                    and pg_catalog.substr(r.request_id, 9, 1) operator(pg_catalog.=) '-' and pg_catalog.substr(r.request_id, 14, 1) operator(pg_catalog.=) '-'
                    and pg_catalog.substr(r.request_id, 19, 1) operator(pg_catalog.=) '-' and pg_catalog.substr(r.request_id, 24, 1) operator(pg_catalog.=) '-'))
           and pg_catalog.jsonb_typeof(r.scoped) operator(pg_catalog.=) 'boolean'
           and x.e operator(pg_catalog.?) 'identifier_hashes'
           and (r.identifier_hashes is null
                or (pg_catalog.jsonb_typeof(r.identifier_hashes) operator(pg_catalog.=) 'array'
                    and not exists (select from pg_catalog.jsonb_array_elements(r.identifier_hashes) as h (h)
                                    where not coalesce(pg_catalog.jsonb_typeof(h.h) operator(pg_catalog.=) 'string'
                                                       and pg_catalog.length(h.h operator(pg_catalog.#>>) '{}') operator(pg_catalog.=) 64
                                                       and (h.h operator(pg_catalog.#>>) '{}') operator(pg_catalog.~) '^[0-9a-f]+$', false)))),
           false) as ok
        from pg_catalog.jsonb_array_elements(entries) with ordinality as x (e, i)
        cross join lateral pg_catalog.jsonb_to_record(
          case when pg_catalog.jsonb_typeof(x.e) operator(pg_catalog.=) 'object' then x.e else '{}'::jsonb end)
          as r (seq text, subject_hash text, entry_hash text, prev_hash text, mode text, erased_at text, secret_id text,
                request_id text, kind text, scoped jsonb, identifier_hashes jsonb)) v;
  if bad is not null then
    raise exception 'ledger entry #% is malformed', bad using errcode = '22023',
      hint = 'Entries are the JSON lines lethe worker --ledger-dir writes, unchanged.';
  end if;
  select pg_catalog.min(d.seq) into bad
  from (select p.seq from pg_catalog.unnest(parsed) p group by p.seq having pg_catalog.count(*) operator(pg_catalog.>) 1) d;
  if bad is not null then
    raise exception 'ledger entry seq % appears more than once', bad using errcode = '22023';
  end if;
  return coalesce(parsed, '{}');
end
$$;
comment on function pii_internal.parse_ledger_entries(jsonb) is 'Internal. Validates the external ledger''s JSON entries and returns them as ledger rows ordered by seq.';

-- Copies ledger entries the database lacks (a restore from before they were written) back
-- in, checking that they continue its chain. Returns (restored, conflicts): conflicts are
-- entries whose seq the database holds with another hash (then nothing is copied).
create or replace function pii_internal.restore_ledger_entries(parsed pii.erasure_ledger[], out restored bigint, out conflicts bigint)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  head pii_internal.chain_heads;
  sid text := pii.secret_id();
  bad bigint;
begin
  restored := 0;
  select * into head from pii_internal.chain_heads h where h.chain operator(pg_catalog.=) 'erasure_ledger' for update;
  select pg_catalog.count(*) into conflicts
  from pg_catalog.unnest(parsed) e join pii.erasure_ledger l on l.seq operator(pg_catalog.=) e.seq
  where l.entry_hash operator(pg_catalog.<>) e.entry_hash;
  if conflicts operator(pg_catalog.>) 0 then
    return;
  end if;
  -- Entries made under another secret are linked, not re-hashed.
  execute pg_catalog.format(
    $q$select pg_catalog.min(o.seq)
       from (select e.*, pg_catalog.lag(e.seq, 1, $5) over w as prev_seq, pg_catalog.lag(e.entry_hash, 1, $6) over w as prev_entry_hash
             from pg_catalog.unnest($1::pii.erasure_ledger[]) e where e.seq operator(pg_catalog.>) $5 window w as (order by e.seq)) o
       where o.seq operator(pg_catalog.<>) (o.prev_seq operator(pg_catalog.+) 1)
          or o.prev_hash is distinct from o.prev_entry_hash
          or (o.secret_id operator(pg_catalog.=) $2 and o.entry_hash operator(pg_catalog.<>) %s)$q$,
    pii_internal.chain_hash_sql('erasure_ledger',
      'pii_internal.ledger_entry_content(o.seq, o.subject_hash, o.identifier_hashes, o.kind, o.scoped, o.mode, o.request_id, o.erased_at, o.secret_id)'))
    into bad using parsed, sid, null::bytea, null::bytea, head.seq, head.last_hash;
  if bad is not null then
    raise exception 'ledger entry seq % does not continue the chain (missing, altered or out of order)', bad using errcode = '22023',
      hint = 'The ledger files were changed or are incomplete: compare them with another copy, and run pii.verify_audit_chain() where the ledger was written.';
  end if;
  insert into pii.erasure_ledger select e.* from pg_catalog.unnest(parsed) e where e.seq operator(pg_catalog.>) head.seq;
  get diagnostics restored = row_count;
  update pii_internal.chain_heads h set seq = l.seq, last_hash = l.entry_hash
  from (select e.seq, e.entry_hash from pg_catalog.unnest(parsed) e order by e.seq desc limit 1) l
  where h.chain operator(pg_catalog.=) 'erasure_ledger' and l.seq operator(pg_catalog.>) h.seq;
  -- They came from the external copy, so the copy holds them.
  update pii_internal.ledger_export x set exported_seq = h.seq from pii_internal.chain_heads h
  where h.chain operator(pg_catalog.=) 'erasure_ledger' and x.exported_seq operator(pg_catalog.<) h.seq and restored operator(pg_catalog.>) 0;
end
$$;
comment on function pii_internal.restore_ledger_entries(pii.erasure_ledger[]) is 'Internal. Appends external ledger entries the database lacks, after checking they continue its chain.';

create or replace function pii.restore_check(entries jsonb)
returns table (ledger_entries bigint, ledger_restored bigint, ledger_conflicts bigint, subjects bigint, replayed bigint,
               already_erased bigint, in_progress bigint, returned bigint, not_present bigint, indeterminate bigint,
               tombstones_written bigint, request_ids uuid[])
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
-- Every statement here reads arrays, or one index or table serially: a parallel plan of the
-- subject table's scan (array_agg in the workers, the arrays combined in the leader) took
-- 2-7x as long as the serial one, more on a loaded machine.
set max_parallel_workers_per_gather = 0
as $$
declare
  subj pii.subject_table;
  sid text := pii.secret_id();
  parsed pii.erasure_ledger[];
  ledger record;
  hashes bytea[];
  modes text[];
  times timestamptz[];
  states text[];
  found_hashes bytea[];
  found_keys text[];
  found_scopes text[];
  found_kinds text[];
  rids uuid[] := '{}';
  new_replayed bigint;
  r record;
begin
  -- The first kind (hashes without a kind prefix): the kind of ledger entries made before
  -- kinds existed (their kind is NULL).
  select * into subj from pii.subject_table s order by s.hash_prefix limit 1;
  if subj.relid is null then
    raise exception 'no subject table is registered yet' using errcode = '55000';
  end if;
  parsed := pii_internal.parse_ledger_entries(entries);

  -- 1. The ledger itself continues where the external copy ends.
  ledger := pii_internal.restore_ledger_entries(parsed);

  -- 2. Each subject's last word under this database's secret: erasures after its last
  --    'return' count, delete winning over erase.
  select pg_catalog.array_agg(s.h), pg_catalog.array_agg(s.m), pg_catalog.array_agg(s.t)
    into hashes, modes, times
  from (select e.subject_hash as h,
               case when pg_catalog.bool_or(e.mode operator(pg_catalog.=) 'delete') filter (where e.seq operator(pg_catalog.>) e.returned_seq) then 'delete'
                    when pg_catalog.bool_or(e.mode operator(pg_catalog.=) 'erase') filter (where e.seq operator(pg_catalog.>) e.returned_seq) then 'erase'
                    else 'return' end as m,
               pg_catalog.max(e.erased_at) filter (where e.mode operator(pg_catalog.<>) 'return') as t
        from (select p.*, coalesce(pg_catalog.max(p.seq) filter (where p.mode operator(pg_catalog.=) 'return')
                                     over (partition by p.subject_hash), 0) as returned_seq
              from pg_catalog.unnest(parsed) p where p.secret_id operator(pg_catalog.=) sid) e
        group by e.subject_hash) s;
  hashes := coalesce(hashes, '{}');

  -- 3. Who is back, in every kind: each kind's subject table is read once with its owner's
  --    rights (a cast or policy of theirs is their code) and its keys hashed here, in their
  --    canonical form (pii_internal.subjects_by_hash); a kind's hashes carry its prefix.
  select pg_catalog.array_agg(x.h), pg_catalog.array_agg(x.k), pg_catalog.array_agg(x.sc), pg_catalog.array_agg(s.kind)
    into found_hashes, found_keys, found_scopes, found_kinds
  from pii.subject_table s
  cross join lateral pii_internal.subjects_by_hash(hashes, s.kind) f
  cross join lateral unnest(f.found_hashes, f.subject_keys, f.scopes) as x (h, k, sc);
  found_hashes := coalesce(found_hashes, '{}');

  -- What the database already reflects, per subject (and how many of those who are back
  -- have no tombstone: their request's filing writes it, below).
  select pg_catalog.array_agg(v.st order by v.i),
         pg_catalog.count(*) filter (where v.st operator(pg_catalog.=) 'replayed' and not v.tombstoned)
    into states, new_replayed
  from (select c.i, tb.subject_hash is not null as tombstoned,
               case when c.m operator(pg_catalog.=) 'return' then 'returned'
                    when tb.erased_at operator(pg_catalog.>=) c.t then 'already_erased'
                    when tb.erased_at is null and rq.id is not null then 'in_progress'
                    when f.h is not null then 'replayed'
                    else 'not_present' end as st
        from unnest(hashes, modes, times) with ordinality as c (h, m, t, i)
        left join pii_internal.tombstones tb on tb.subject_hash operator(pg_catalog.=) c.h
        left join pii.requests rq on rq.id operator(pg_catalog.=) tb.request_id and rq.status in ('queued', 'running')
        left join pg_catalog.unnest(found_hashes) as f (h) on f.h operator(pg_catalog.=) c.h) v;

  -- 4. Tombstones before anything is erased, so guards refuse these subjects from this
  --    transaction's commit on: erased as of the ledger for those who are not back; those
  --    who are back are flagged by their request (step 5, this transaction: its filing
  --    writes their tombstones with the request, bucket and pseudonym in one statement,
  --    and the request marks them erased).
  insert into pii_internal.tombstones as tb (subject_hash, erased_at, kind)
  select c.h, c.t, coalesce(k.kind, subj.kind)
  from unnest(hashes, times, states) as c (h, t, st)
  left join (select distinct on (p.subject_hash) p.subject_hash, p.kind from pg_catalog.unnest(parsed) p
             where p.kind is not null order by p.subject_hash, p.seq desc) k on k.subject_hash operator(pg_catalog.=) c.h
  where c.st operator(pg_catalog.=) 'not_present'
  on conflict (subject_hash) do update set erased_at = excluded.erased_at
    where tb.erased_at is null or tb.erased_at operator(pg_catalog.<) excluded.erased_at;
  get diagnostics tombstones_written = row_count;
  tombstones_written := tombstones_written operator(pg_catalog.+) new_replayed;
  -- Identifier tombstones too: the erased person stays out under a new key as well.
  insert into pii_internal.identifier_tombstones (kind, identifier_hash, subject_hash, identifier)
  select distinct coalesce(p.kind, subj.kind), i.h, p.subject_hash, 'restored'
  from pg_catalog.unnest(parsed) p
  cross join lateral pg_catalog.unnest(p.identifier_hashes) as i (h)
  join unnest(hashes, states) as c (h, st) on c.h operator(pg_catalog.=) p.subject_hash
  where p.secret_id operator(pg_catalog.=) sid and p.mode operator(pg_catalog.<>) 'return' and c.st in ('replayed', 'not_present', 'already_erased')
  on conflict do nothing;

  -- 5. One request per kind and mode (a request has one of each): two iterations per kind
  --    at most, never one per subject.
  for r in
    select f.kind, c.m as mode, pg_catalog.array_agg(f.k) as keys, pg_catalog.array_agg(f.s) as scopes, s.scope_attnum is not null as scoped
    from unnest(hashes, modes, states) as c (h, m, st)
    join unnest(found_hashes, found_keys, found_scopes, found_kinds) as f (h, k, s, kind) on f.h operator(pg_catalog.=) c.h
    join pii.subject_table s on s.kind operator(pg_catalog.=) f.kind
    where c.st operator(pg_catalog.=) 'replayed'
    group by f.kind, c.m, s.scope_attnum order by f.kind, c.m
  loop
    rids := rids operator(pg_catalog.||) pii_internal.create_request(r.keys, case when r.scoped then r.scopes end,
                                                            null, null, 'restore-check', r.mode, null, r.kind);
  end loop;

  ledger_entries := pg_catalog.cardinality(parsed);
  ledger_restored := ledger.restored;
  ledger_conflicts := ledger.conflicts;
  subjects := pg_catalog.cardinality(hashes);
  select pg_catalog.count(*) filter (where s operator(pg_catalog.=) 'replayed'), pg_catalog.count(*) filter (where s operator(pg_catalog.=) 'already_erased'),
         pg_catalog.count(*) filter (where s operator(pg_catalog.=) 'in_progress'), pg_catalog.count(*) filter (where s operator(pg_catalog.=) 'returned'),
         pg_catalog.count(*) filter (where s operator(pg_catalog.=) 'not_present')
    into replayed, already_erased, in_progress, returned, not_present
  from pg_catalog.unnest(states) s;
  select pg_catalog.count(distinct p.subject_hash) into indeterminate from pg_catalog.unnest(parsed) p where p.secret_id operator(pg_catalog.<>) sid;
  request_ids := rids;
  perform pii_internal.write_audit('restore_check', null, pg_catalog.jsonb_build_object(
    'ledger_entries', ledger_entries, 'ledger_restored', ledger_restored, 'ledger_conflicts', ledger_conflicts, 'subjects', subjects,
    'replayed', replayed, 'already_erased', already_erased, 'in_progress', in_progress, 'returned', returned,
    'not_present', not_present, 'indeterminate', indeterminate, 'tombstones_written', tombstones_written, 'requests', rids));
  return next;
end
$$;
comment on function pii.restore_check(jsonb) is
$$After restoring a backup: compares the external ledger (the JSON entries lethe worker --ledger-dir wrote) with this
database. Copies back the ledger entries it lacks, re-creates missing tombstones first (guards refuse the subjects
from then on), then files one erasure request per kind and mode (source restore-check) for every subject of every kind
that is back (its key in its kind's subject table hashes to a ledger entry). Counts: replayed, already_erased, in_progress (a request is already open), returned
(allowed back since), not_present, indeterminate (hashed under another HMAC secret). A second run replays nothing.
Example: select * from pii.restore_check('[{"seq": 1, …}]'::jsonb);  -- usually: lethe restore-check --ledger DIR$$;

-- Audit rows written before the chain existed are chained once, in id order. Here rather
-- than in a versioned migration because it needs the chain functions above.
do $do$
begin
  if not exists (select from pii_internal.chain_heads h where h.chain = 'audit') then
    alter table pii.audit disable trigger audit_no_update_delete;
    update pii.audit a set chain_seq = n.seq
    from (select x.id, pg_catalog.row_number() over (order by x.id) as seq from pii.audit x) n
    where a.id = n.id;
    update pii.audit a set entry_hash = pii_internal.chain_hash('audit', pii_internal.audit_entry_content(a)), secret_id = pii.secret_id();
    update pii.audit a set prev_hash = l.prev_hash
    from (select x.id, pg_catalog.lag(x.entry_hash) over (order by x.chain_seq) as prev_hash from pii.audit x) l
    where a.id = l.id;
    alter table pii.audit enable always trigger audit_no_update_delete;

    insert into pii_internal.chain_heads (chain, seq, last_hash)
    select 'audit', coalesce(pg_catalog.max(a.chain_seq), 0),
           (select x.entry_hash from pii.audit x order by x.chain_seq desc limit 1)
    from pii.audit a;
  end if;
end
$do$;

comment on table pii_internal.chain_heads is 'Head of each hash chain (audit, erasure_ledger): last sequence number and entry hash. Locked by every append.';
comment on table pii.erasure_ledger is 'Append-only, hash-chained record of every finished erasure (one entry per subject): keyed subject hash, mode, request, time, secret id. Copied outside the database by lethe worker --ledger-dir; replayed after a restore by lethe restore-check.';
comment on table pii_internal.erasure_ledger_pending is 'Subjects erased by the current transaction, until its erase_subjects / erase_chunk audit row moves them into pii.erasure_ledger.';
comment on table pii_internal.ledger_export is 'Progress of the external ledger copy (lethe worker --ledger-dir): last entry written, last failure.';
revoke all on pii_internal.chain_heads, pii.erasure_ledger, pii_internal.erasure_ledger_pending, pii_internal.ledger_export from public;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.verify_audit_chain(), pii.ledger_status(), pii.secret_id() to pii_auditor, pii_operator;
grant execute on function pii.ledger_entries_after(bigint, integer), pii.record_ledger_export(bigint, text, text) to pii_operator;
grant execute on function pii.restore_check(jsonb) to pii_admin;
grant select on pii.erasure_ledger to pii_auditor;
