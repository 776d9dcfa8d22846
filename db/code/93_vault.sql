-- Tokenized contact vault (F18, F19, F24), code: tokenize, detokenize, crypto-shredding
-- on erasure, the residual check verification calls, and PII API keys. Repeatable
-- (create or replace; triggers dropped and re-created), re-applied by lethe migrate.

-- The KEK outside the database (external KEK mode, docs/vault.md): a session brings it in
-- its startup packet, options=-c lethe.vault_kek=<64 hex digits> (PGOPTIONS, or
-- LETHE_VAULT_KEK / --kek-file for lethe pii-api), which no log line records, and which
-- only that session can read. Never SET it: log_statement logs SET statements.
-- A setting's KEK, or NULL when the session has none; the error never quotes the setting.
-- Read through pii_internal.session_kek (45_deputies.sql): moved out of the settings before
-- any table owner's code runs in the session.
create or replace function pii_internal.vault_kek_setting(setting text) returns bytea
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  given text := pii_internal.session_kek(setting);
begin
  if given is null or given = '' then
    return null;
  end if;
  if given !~ '^[0-9A-Fa-f]{64}$' then
    raise exception '% must be 64 hexadecimal digits (a 256-bit key)', setting using errcode = '22023';
  end if;
  return pg_catalog.decode(given, 'hex');
end
$$;
comment on function pii_internal.vault_kek_setting(text) is 'Internal. The 256-bit key a session carries in a lethe.* setting (from its startup options), or NULL.';

-- The KEK this statement uses: the embedded one, or the session's, checked against
-- kek_check so that a wrong KEK fails at once instead of wrapping keys nobody can open.
create or replace function pii_internal.vault_open_kek() returns bytea
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  held pii_internal.vault_kek;
  given bytea;
begin
  select * into held from pii_internal.vault_kek;
  if held.kek is not null then
    return held.kek;
  end if;
  given := pii_internal.vault_kek_setting('lethe.vault_kek');
  if given is null then
    raise exception 'the vault''s key-encryption key is held outside the database and this session has none'
      using errcode = '55000',
            hint = 'Connect with options=-c lethe.vault_kek=<64 hex digits> (PGOPTIONS; lethe pii-api: LETHE_VAULT_KEK or --kek-file). Never SET it.';
  end if;
  if pii_internal.vault_kek_check(given) operator(pg_catalog.<>) held.kek_check then
    raise exception 'the key-encryption key of this session does not open this vault' using errcode = '28000',
      hint = 'A KEK that was rotated away no longer works; use the current one.';
  end if;
  return given;
end
$$;
comment on function pii_internal.vault_open_kek() is 'Internal. The vault''s KEK: embedded, or the session''s lethe.vault_kek checked against kek_check (55000 without one, 28000 for a wrong one).';

create or replace function pii_internal.vault_kek_check(kek bytea) returns bytea
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.sha256(pg_catalog.convert_to('lethe vault kek check', 'UTF8') operator(pg_catalog.||) kek)
$$;
comment on function pii_internal.vault_kek_check(bytea) is 'Internal. The check value of a KEK (pii_internal.vault_kek.kek_check): identifies it, reveals nothing of it.';

-- The functions that call pgcrypto name its schema, resolved once here: the text below is
-- installed with @crypto@ replaced by that schema (never found through search_path).
-- pgcrypto's functions must belong to a superuser or to Lethe's owner: whoever owns them
-- could replace them and read every key that passes through.
do $install$
declare
  crypto_oid oid := (select e.extnamespace from pg_catalog.pg_extension e where e.extname = 'pgcrypto');
begin
  if crypto_oid is null then
    raise exception 'pgcrypto is not installed' using errcode = '58P01', hint = 'Migration 0009_vault.sql installs it.';
  end if;
  if exists (select from pg_catalog.pg_proc p join pg_catalog.pg_roles r on r.oid = p.proowner
             where p.pronamespace = crypto_oid and p.proname in ('encrypt', 'decrypt', 'encrypt_iv', 'decrypt_iv', 'gen_random_bytes')
               and not r.rolsuper and r.rolname <> current_user) then
    raise exception 'pgcrypto''s functions belong to a role that is neither a superuser nor Lethe''s owner' using errcode = '42501',
      hint = 'That role could replace them and read the vault''s keys. Reinstall pgcrypto as Lethe''s owner.';
  end if;
  execute pg_catalog.replace($code$

-- Tokenizes values, set-based. Inputs are parallel arrays; scopes is one scope for all or
-- one per value (scoped installs); subject_kind names the subjects' kind (NULL: the install's
-- only kind). Subjects are hashed as the rest of Lethe does (keys cast through the kind's key
-- column type with the subject table owner's rights, in canonical form:
-- pii_internal.canonical_subjects; the kind's hash), so erasure of that kind finds their
-- entries and data keys. A subject with a
-- tombstone (asked to be forgotten) gets no entry and a NULL token. Randomness: one
-- gen_random_bytes(32) seed per statement, expanded with SHA-256 (seed || position for the
-- tokens' 96 bits, seed || subject hash for new data keys): pgcrypto's generator costs
-- several microseconds a call, the built-in sha256 a fraction; the seeds never leave the call.
create or replace function pii.tokenize_many(subject_keys text[], kinds text[], "values" text[], scopes text[] default null,
                                             subject_kind text default null)
returns table (ordinality bigint, token text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
declare
  subj pii.subject_table;
  n integer := coalesce(pg_catalog.cardinality(subject_keys), 0);
  bad integer;
  distinct_kinds text[];
  tokens text[];
  tokenized bigint;
  input record;
begin
  if subject_keys is null or kinds is null or "values" is null then
    raise exception 'subject_keys, kinds and values must not be NULL' using errcode = '22004';
  end if;
  if coalesce(pg_catalog.cardinality(kinds), 0) <> n or coalesce(pg_catalog.cardinality("values"), 0) <> n then
    raise exception 'subject_keys, kinds and values must have one element per value (% keys, % kinds, % values)',
      n, coalesce(pg_catalog.cardinality(kinds), 0), coalesce(pg_catalog.cardinality("values"), 0) using errcode = '22023';
  end if;
  if n = 0 then
    return;
  end if;
  -- Kinds, subject table, keys and scopes checked (errors name positions) and in canonical
  -- text, cast with the subject table owner's rights (db/code/94_vault_key_store.sql).
  input := pii_internal.vault_subjects(subject_keys, kinds, scopes, subject_kind);
  subj := input.subj;
  bad := pg_catalog.array_position("values", null);
  if bad is not null then
    raise exception 'value #% is NULL', bad using errcode = '22004';
  end if;
  distinct_kinds := array(select distinct k.k from unnest(kinds) as k (k));
  -- The KEK: FOR SHARE, so that a rotation (FOR UPDATE) waits for this call and a call
  -- that waited for a rotation sees the new KEK, never wrapping a key under the old one.
  -- Opened here once, so a missing or wrong KEK fails before anything is computed; the
  -- statement reads it again itself (below).
  perform from pii_internal.vault_kek for share;
  perform pii_internal.vault_refuse_key_store('pii.tokenize_many');
  perform pii_internal.vault_open_kek();

  -- One statement. u: per value its subject's hash (NULL token for a tombstoned subject),
  -- its token: 96 bits (random: SHA-256 of a per-statement seed and the position; a
  -- deterministic kind: keyed hash of scope, kind and normalised value) and a 32-bit keyed
  -- tag of them, and its subject's data key: unwrapped if the subject has one, else
  -- SHA-256 of a per-statement seed and the subject hash, so that every value of a new
  -- subject derives the same key with no grouping and no join; each new key is wrapped
  -- and stored once. The IV is the token's own 128 bits: unpredictable before the call,
  -- never reused under one key. Random tokens cannot collide (128 bits); deterministic
  -- ones repeat by design (the first subject in input order keeps one asked for twice).
  -- Both inserts go in index order (entries by token, keys by subject hash: half the
  -- insertion cost of random order; tokens are hex, so their byte order is their order in
  -- any collation). The KEK and the seeds are read by the statement (InitPlans), never
  -- bound: a bound value is a constant of the plan, and any session may turn on
  -- debug_print_plan (docs/security.md). A data key created concurrently for the same new
  -- subject (two signups of one person at the same moment) is the only conflict possible
  -- on the keys: then the statement runs again and finds that key.
  for attempt in 1..3 loop
    begin
      execute pg_catalog.format(
        $q$with u as (
             select u.i, u.kind, u.v, u.h, k.subject_hash is null as fresh,
                    case when tb.subject_hash is null
                         then %1$s end as t,
                    case when tb.subject_hash is null
                         then coalesce(@crypto@.decrypt(k.wrapped_key, (select pii_internal.vault_open_kek()), 'aes'),
                                       pg_catalog.sha256((select @crypto@.gen_random_bytes(32)) operator(pg_catalog.||) u.h)) end as dk
             -- Each value's subject hash and token bits computed once (OFFSET 0: not inlined
             -- into every join condition and expression that uses them).
             from (select u.i, u.kind, u.v, u.h,
                          case when vk.deterministic then %2$s
                               else pg_catalog.left(pg_catalog.encode(pg_catalog.sha256((select @crypto@.gen_random_bytes(32))
                                      operator(pg_catalog.||) pg_catalog.int8send(u.i)), 'hex'), 24) end as b
                   -- The arrays unnested in the select list (ProjectSet, in lockstep: they
                   -- have one element per value), not in FROM: a function scan in FROM
                   -- stores all its rows in a tuplestore first, on disk past work_mem.
                   from (select u.i, u.kind, u.v, u.s, %3$s as h
                         from (select pg_catalog.unnest($1) as k, pg_catalog.unnest($2) as s, pg_catalog.unnest($3) as kind,
                                      pg_catalog.unnest($4) as v, pg_catalog.generate_series(1::bigint, pg_catalog.cardinality($3)) as i
                               offset 0) u
                         offset 0) u
                   left join pii.vault_kinds vk on vk.kind operator(pg_catalog.=) u.kind
                   offset 0) u
             left join pii_internal.tombstones tb on tb.subject_hash operator(pg_catalog.=) u.h
             left join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) u.h),
           stored as (
             insert into pii_internal.vault_keys (subject_hash, wrapped_key)
             select f.h, @crypto@.encrypt(f.dk, (select pii_internal.vault_open_kek()), 'aes')
             from (select distinct on (u.h) u.h, u.dk from u where u.fresh and u.t is not null order by u.h) f),
           entries as (
             insert into pii_internal.vault_entries (token, subject_hash, kind, ciphertext)
             select u.t, u.h, u.kind, y.iv operator(pg_catalog.||) @crypto@.encrypt_iv(pg_catalog.convert_to(u.v, 'UTF8'), u.dk, y.iv, 'aes-cbc/pad:pkcs')
             from u cross join lateral (select pg_catalog.decode(pg_catalog.substr(u.t, 5), 'hex') as iv) y
             where u.t is not null
             order by u.t collate pg_catalog."C"%4$s)
         select pg_catalog.array_agg(u.t order by u.i), pg_catalog.count(u.t) from u$q$,
        pii_internal.vault_token_sql('u.b'),
        pii_internal.vault_deterministic_bits_sql('u.s', 'u.kind', 'u.v', 'vk.normaliser'),
        pii_internal.kind_hash_sql(subj.kind, 'u.s', 'u.k'),
        -- A deterministic token asked for twice belongs to its first subject in input order.
        case when exists (select from pii.vault_kinds vk where vk.deterministic and vk.kind operator(pg_catalog.=) any (distinct_kinds))
             then ', u.i on conflict (token) do nothing' else '' end)
        into tokens, tokenized
        using input.found_keys, input.found_scopes, kinds, "values";
      exit;
    exception when unique_violation then
      if attempt = 3 then
        raise;
      end if;
    end;
  end loop;

  perform pii_internal.write_audit('tokenize', null, pg_catalog.jsonb_build_object(
    'values', n, 'tokenized', tokenized, 'refused_tombstoned', n - tokenized));
  -- In the select list (ProjectSet): unnest in FROM would store every row in a tuplestore first.
  return query select pg_catalog.generate_series(1::bigint, pg_catalog.cardinality(tokens)), pg_catalog.unnest(tokens);
end
$fn$;

-- Looks tokens up for sending. One audit row per call, whatever the number of tokens.
create or replace function pii.detokenize(tokens text[], purpose text, client text default null)
returns table (token text, kind text, value text, status text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
begin
  perform pii_internal.vault_refuse_key_store('pii.detokenize');
  perform pii_internal.detokenize_audit(tokens, purpose, client);
  -- One pass in request order: each token's entry by the token's index, then its subject's
  -- data key by the key's, one unwrap and one decryption per found token, a microsecond
  -- each (cheaper than collecting each subject's key once). The tokens come through a
  -- sub-select: the planner then plans these index probes whatever the batch's size, never
  -- a hash of the whole vault. The KEK is read in this statement (an InitPlan, the statement's snapshot,
  -- evaluated at the first key it opens), so a concurrent rotation is seen whole or not at
  -- all, and a batch of only unknown or erased tokens needs no KEK. Not in the vault but
  -- carrying a valid keyed tag: issued by this install, so erased.
  return query
    select u.t, e.kind,
           case when k.wrapped_key is not null then
             pg_catalog.convert_from(@crypto@.decrypt_iv(pg_catalog.substr(e.ciphertext, 17),
                                                         @crypto@.decrypt(k.wrapped_key, (select pii_internal.vault_open_kek()), 'aes'),
                                                         pg_catalog.substr(e.ciphertext, 1, 16), 'aes-cbc/pad:pkcs'), 'UTF8') end,
           case when k.wrapped_key is not null then 'ok'
                when e.subject_hash is not null then 'erased'
                when u.t ~ '^tok_[0-9a-f]{32}$'
                     -- The key read by the statement, not a plpgsql variable (a plan constant: see pii_internal.hmac_sql).
                     and pg_catalog.substr(u.t, 29) = pg_catalog.left(pg_catalog.encode(pg_catalog.sha256((select s.outer_key from pii_internal.secret s) operator(pg_catalog.||) pg_catalog.sha256(
                           (select s.inner_key from pii_internal.secret s) operator(pg_catalog.||) pg_catalog.convert_to('vault_tag' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) pg_catalog.substr(u.t, 5, 24), 'UTF8'))), 'hex'), 8)
                  then 'erased'
                else 'unknown' end
    -- Probed in token order (tokens are hex: byte order is their order in any collation),
    -- so the index and the entries, inserted in token order, are read sequentially-ish.
    from (select u.t, u.i from unnest((select tokens)) with ordinality as u (t, i) order by u.t collate pg_catalog."C" offset 0) u
    left join pii_internal.vault_entries e on e.token operator(pg_catalog.=) u.t
    left join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) e.subject_hash
    order by u.i;
end
$fn$;

-- Rewraps every data key under a new KEK in one statement; tokens and ciphertext do not
-- change. to_location embedded: the new KEK is made here and kept in the database;
-- external: the session brings it (options=-c lethe.vault_new_kek=<hex>, with
-- lethe.vault_kek for the current one when that is external too) and the database keeps
-- only its check value. The old KEK opens nothing from then on.
create or replace function pii.vault_rotate_kek(to_location text default null)
returns table (kek_location text, rewrapped_keys bigint)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
-- The rewrapping statement takes both KEKs as values (plan constants): no plan of it is
-- printed, whatever the session turned on. Nobody else's code runs in here.
set debug_print_plan = off
as $fn$
declare
  held pii_internal.vault_kek;
  from_location text;
  old_kek bytea;
  new_kek bytea;
  n bigint;
begin
  if to_location is not null and to_location not in ('embedded', 'external') then
    raise exception 'to_location must be embedded or external' using errcode = '22023';
  end if;
  -- Waits for tokenize calls holding the KEK (FOR SHARE); they wait for this in turn.
  select * into held from pii_internal.vault_kek for update;
  from_location := case when held.kek is null then 'external' else 'embedded' end;
  to_location := coalesce(to_location, from_location);
  old_kek := pii_internal.vault_open_kek();
  if to_location = 'external' then
    new_kek := pii_internal.vault_kek_setting('lethe.vault_new_kek');
    if new_kek is null then
      raise exception 'a rotation to an external KEK needs the new KEK in this session' using errcode = '55000',
        hint = 'Connect with options=-c lethe.vault_new_kek=<64 hex digits>, or use lethe pii-api kek rotate.';
    end if;
    if new_kek operator(pg_catalog.=) old_kek then
      raise exception 'the new KEK is the current one' using errcode = '22023';
    end if;
  else
    new_kek := @crypto@.gen_random_bytes(32);
  end if;
  update pii_internal.vault_keys k set wrapped_key = @crypto@.encrypt(@crypto@.decrypt(k.wrapped_key, old_kek, 'aes'), new_kek, 'aes');
  get diagnostics n = row_count;
  update pii_internal.vault_kek k
  set kek = case when to_location = 'embedded' then new_kek end, kek_check = pii_internal.vault_kek_check(new_kek), rotated_at = pg_catalog.now();
  perform pii_internal.write_audit('vault_rotate_kek', null,
    pg_catalog.jsonb_build_object('from', from_location, 'to', to_location, 'data_keys', n));
  return query select to_location, n;
end
$fn$;

$code$, '@crypto@', pg_catalog.quote_ident((select n.nspname from pg_catalog.pg_namespace n where n.oid = crypto_oid)));
end
$install$;

comment on function pii.tokenize_many(text[], text[], text[], text[], text) is
$$Tokenizes values set-based: each value is stored encrypted (AES-256) under its subject's data key; returns
(ordinality, token) in input order. Tokens are random (tok_ + 32 hex) unless the kind is deterministic
(pii.set_token_kind): then the same scope + kind + normalised value gives the same token. Subjects with a tombstone get
NULL and nothing is stored. subject_kind names the subjects' kind (customer, staff) and may be omitted when the install
has one; each kind's subjects have their own data keys, and erasing one shreds only its entries.
Callable by pii_operator and pii_admin.
Example: select * from pii.tokenize_many(array['42', '43'], array['email', 'email'], array['a@example.com', 'b@example.com']);
select * from pii.tokenize_many(array['7'], array['email'], array['mike@shop.example'], subject_kind => 'staff');$$;

create or replace function pii.tokenize(subject_key text, kind text, value text, scope text default null, subject_kind text default null)
returns text
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select t.token from pii.tokenize_many(array[subject_key], array[kind], array[value],
                                        case when scope is null then null else array[scope] end, subject_kind) t
$$;
comment on function pii.tokenize(text, text, text, text, text) is
$$Tokenizes one value of a subject (see pii.tokenize_many). Store the token in your table instead of the value. kind is
the value's kind (email, phone); subject_kind the subject's (customer, staff), needed when the install has several.
Example: insert into app.customers (id, email_token) values (42, pii.tokenize('42', 'email', 'someone@example.org'));
select pii.tokenize('7', 'email', 'mike@shop.example', subject_kind => 'staff');$$;

comment on function pii.detokenize(text[], text, text) is
$$Resolves tokens at send time: one row per token in request order, with kind, value and status ok | erased | unknown
(an erased or unknown token never fails the batch). Writes exactly one audit row per call (role, purpose, client,
count, keyed hash of the token list; never tokens or values). purpose (and client) use letters, digits, spaces and
_.:/#- only. With the KEK outside the database, a batch of only unknown or erased tokens needs none; a resolvable token
without it fails the batch (55000). pii_dispatcher only. Example: select * from pii.detokenize(array['tok_…'], 'campaign:4711');$$;

create or replace function pii.set_token_kind(kind text, deterministic boolean default false, normaliser text default 'none')
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if kind is null or kind !~ '^[a-z][a-z0-9_]{0,62}$' then
    raise exception 'kind must be a name of lower-case letters, digits and _ (e.g. email)' using errcode = '22023';
  end if;
  if deterministic is null or normaliser is null or normaliser not in ('none', 'trim', 'email', 'phone') then
    raise exception 'normaliser must be none, trim, email or phone, not "%"', normaliser using errcode = '22023';
  end if;
  insert into pii.vault_kinds as k (kind, deterministic, normaliser)
  values (set_token_kind.kind, set_token_kind.deterministic, set_token_kind.normaliser)
  on conflict on constraint vault_kinds_pkey do update set deterministic = excluded.deterministic, normaliser = excluded.normaliser;
  perform pii_internal.write_audit('set_token_kind', null, pg_catalog.jsonb_build_object('kind', kind, 'deterministic', deterministic, 'normaliser', normaliser));
end
$$;
comment on function pii.vault_rotate_kek(text) is
$$Rewraps every data key of the vault under a new key-encryption key, in one statement, and audits the count; tokens
and values do not change and the old KEK opens nothing afterwards. to_location embedded (a new KEK made and kept in the
database) or external (the session brings the new KEK as options=-c lethe.vault_new_kek=<hex>, and the current one as
lethe.vault_kek if that is external too; the database keeps a check value only). Default: where the KEK is now.
pii_admin only; lethe pii-api kek rotate does it. Example: select * from pii.vault_rotate_kek();$$;

comment on function pii.set_token_kind(text, boolean, text) is
$$Declares a token kind: deterministic (same scope + kind + normalised value -> same token, never across scopes; the
token is a keyed hash) and its normaliser (none, trim, email: trimmed lower case, phone: digits and +). Applies to
new tokens. Example: select pii.set_token_kind('email', deterministic => true, normaliser => 'email');$$;

-- Crypto-shredding. A subject is erased when its tombstone gets erased_at (direct
-- erasure, request chunks, every mode, and any future path that records erasures): in
-- that statement, its entries and its data key go. Statement-level with a transition
-- table: one delete per table per statement, never a loop over subjects.
create or replace function pii_internal.vault_shred_erased() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  erased bytea[];
begin
  -- An array, not a join with the transition table (which has no statistics): index
  -- scans on the subject hash whatever the planner would guess.
  select pg_catalog.array_agg(distinct t.subject_hash) into erased from erased_tombstones t where t.erased_at is not null;
  if erased is null or not exists (select from pii_internal.vault_keys) then
    return null;
  end if;
  delete from pii_internal.vault_entries v where v.subject_hash operator(pg_catalog.=) any (erased);
  -- A data key in a separate key store: its id is queued, for the store to destroy it
  -- (db/code/94_vault_key_store.sql).
  with gone as (delete from pii_internal.vault_keys k where k.subject_hash operator(pg_catalog.=) any (erased) returning k.key_id)
  insert into pii_internal.vault_shred_queue (key_id) select g.key_id from gone g where g.key_id is not null
  on conflict (key_id) do nothing;
  return null;
end
$$;
comment on function pii_internal.vault_shred_erased() is 'Internal. Trigger on pii_internal.tombstones: destroys the vault entries and data keys of subjects marked erased, in the same statement.';

create or replace trigger vault_shred_on_erase_insert after insert on pii_internal.tombstones
  referencing new table as erased_tombstones for each statement execute function pii_internal.vault_shred_erased();
create or replace trigger vault_shred_on_erase_update after update on pii_internal.tombstones
  referencing new table as erased_tombstones for each statement execute function pii_internal.vault_shred_erased();
-- Also under session_replication_role = replica (which silences ordinary triggers).
alter table pii_internal.tombstones enable always trigger vault_shred_on_erase_insert;
alter table pii_internal.tombstones enable always trigger vault_shred_on_erase_update;

-- What verification reports for the vault: any entry or data key left for the subjects.
create or replace function pii_internal.vault_residuals(subject_hashes bytea[])
returns table (table_name text, column_name text, subject_hash text, detail text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select 'pii_internal.vault_entries', 'ciphertext', pg_catalog.encode(x.h, 'hex'), 'vault entry of an erased subject not shredded'
  from (select distinct e.subject_hash as h from unnest(subject_hashes) as u (h)
        join pii_internal.vault_entries e on e.subject_hash operator(pg_catalog.=) u.h) x
  union all
  select 'pii_internal.vault_keys', case when k.key_id is null then 'wrapped_key' else 'key_id' end, pg_catalog.encode(k.subject_hash, 'hex'),
         'data key of an erased subject not destroyed'
  from unnest(subject_hashes) as u (h) join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) u.h
$$;
comment on function pii_internal.vault_residuals(bytea[]) is 'Internal. Vault entries and data keys still held for the given subject hashes; pii.verify_erasure reports them.';

---------------------------------------------------------------------------------------
-- PII API keys (lethe pii-api keys create|list|revoke). The CLI generates the key and
-- passes only its SHA-256.

create or replace function pii.create_api_key(name text, key_hash bytea, scope text default 'dispatcher')
returns uuid
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  id_ uuid;
begin
  if name is null or name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' then
    raise exception 'key name must be 1 to 63 letters, digits or _.- (e.g. moengage-prod)' using errcode = '22023';
  end if;
  if scope is null or scope not in ('dispatcher', 'ping') then
    raise exception 'scope must be dispatcher or ping, not "%"', scope using errcode = '22023';
  end if;
  if key_hash is null or pg_catalog.length(key_hash) <> 32 then
    raise exception 'key_hash must be the 32-byte SHA-256 of the key' using errcode = '22023';
  end if;
  if exists (select from pii_internal.api_keys k where k.name = create_api_key.name and k.revoked_at is null) then
    raise exception 'an active API key named "%" exists already', name using errcode = '23505', hint = 'Revoke it first, or pick another name.';
  end if;
  insert into pii_internal.api_keys (name, key_hash, scope) values (create_api_key.name, create_api_key.key_hash, create_api_key.scope)
  returning id into id_;
  perform pii_internal.write_audit('create_api_key', null, pg_catalog.jsonb_build_object('key_id', id_, 'name', name, 'scope', scope));
  return id_;
end
$$;
comment on function pii.create_api_key(text, bytea, text) is
$$Records a PII API key by its SHA-256 (the key itself is never stored). scope dispatcher may look values up; ping may
only authenticate. Use lethe pii-api keys create. Example: select pii.create_api_key('moengage', sha256('…'::bytea));$$;

create or replace function pii.revoke_api_key(key text)
returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  n integer;
begin
  update pii_internal.api_keys k set revoked_at = pg_catalog.now()
  where k.revoked_at is null and (k.name = revoke_api_key.key or k.id::text = pg_catalog.lower(revoke_api_key.key));
  get diagnostics n = row_count;
  if n = 0 then
    raise exception 'no active API key with that name or id' using errcode = '42704';
  end if;
  perform pii_internal.write_audit('revoke_api_key', null, pg_catalog.jsonb_build_object('keys', n));
  return n;
end
$$;
comment on function pii.revoke_api_key(text) is
$$Revokes an active PII API key by name or id; the running server refuses it from its next request.
Example: select pii.revoke_api_key('moengage');$$;

create or replace view pii.api_key_list with (security_barrier) as
select k.id, k.name, k.scope, k.created_by, k.created_at, k.revoked_at from pii_internal.api_keys k;
comment on view pii.api_key_list is 'PII API keys without their hashes: id, name, scope, who created them, when, revocation.';

-- What the PII API server asks on every request: the active key, found by the SHA-256
-- of a bearer key (or an OAuth client secret) or by the id an OAuth access token carries.
create or replace function pii.api_key_scope(key_hash bytea default null, key_id uuid default null)
returns table (id uuid, name text, scope text)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select k.id, k.name, k.scope from pii_internal.api_keys k
  where k.revoked_at is null
    and ((api_key_scope.key_hash is not null and k.key_hash = api_key_scope.key_hash)
         or (api_key_scope.key_hash is null and k.id = api_key_scope.key_id))
$$;
comment on function pii.api_key_scope(bytea, uuid) is
$$The active PII API key (id, name, scope dispatcher | ping) with that SHA-256, or that id; no row when unknown or
revoked. Called by the PII API server on every request. Example: select * from pii.api_key_scope(key_hash => sha256('…'::bytea));$$;

revoke execute on all functions in schema pii, pii_internal from public;
revoke all on pii.api_key_list from public;
grant execute on function pii.tokenize_many(text[], text[], text[], text[], text), pii.tokenize(text, text, text, text, text)
  to pii_operator, pii_admin;
grant execute on function pii.detokenize(text[], text, text), pii.api_key_scope(bytea, uuid) to pii_dispatcher;
grant execute on function pii.set_token_kind(text, boolean, text), pii.create_api_key(text, bytea, text),
  pii.revoke_api_key(text), pii.vault_rotate_kek(text) to pii_admin;
grant select on pii.api_key_list to pii_admin, pii_auditor;
