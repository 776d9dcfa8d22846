-- The vault with its data keys in a separate key store (keys mode b, opt-in; docs/vault.md
-- "Separate key store"). State: migration 0025. This database keeps per subject the id of
-- its data key (pii_internal.vault_keys.key_id) and per token the ciphertext; the data keys
-- live in the key store, and the TypeScript layer (src/vault/) encrypts and decrypts with
-- them, so no data key ever enters this database, its logs or its backups. Erasure queues
-- the erased subjects' key ids (pii_internal.vault_shred_queue) in its own transaction; the
-- worker has the store destroy them. Also here: the pieces tokenize and detokenize share in
-- both modes (input checks, token SQL, the detokenize audit row).

-- The key store the vault is bound to, or NULL (data keys wrapped in this database).
create or replace function pii_internal.vault_key_store_id() returns uuid
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select s.store_id from pii_internal.vault_key_store s
$$;
comment on function pii_internal.vault_key_store_id() is 'Internal. The id of the separate key store the vault is bound to, or NULL when the data keys are in this database.';

-- The functions that need the data keys in this database refuse a vault bound to a key store.
create or replace function pii_internal.vault_refuse_key_store(fn text) returns void
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if pii_internal.vault_key_store_id() is not null then
    raise exception '%: the vault''s data keys are in a separate key store, not in this database', fn using errcode = '55000',
      hint = 'Tokenize and detokenize through Lethe''s TypeScript layer with the key store (createLethe({ keyStore }), lethe pii-api --key-store-url): docs/vault.md.';
  end if;
end
$$;
comment on function pii_internal.vault_refuse_key_store(text) is 'Internal. 55000 when the vault is bound to a separate key store (the caller needs the keys in this database).';

-- The checks every tokenizing call makes, then the subjects in canonical text by position
-- (cast with the subject table owner's rights): kinds (when given) one per key and named by
-- the pattern, the subject table registered, keys and scopes valid; errors name positions,
-- never values.
create or replace function pii_internal.vault_subjects(subject_keys text[], kinds text[], scopes text[], subject_kind text,
                                                       out subj pii.subject_table, out found_keys text[], out found_scopes text[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  n integer := coalesce(pg_catalog.cardinality(subject_keys), 0);
  bad integer;
  canonical record;
begin
  if subject_keys is null then
    raise exception 'subject_keys must not be NULL' using errcode = '22004';
  end if;
  if kinds is not null and pg_catalog.cardinality(kinds) <> n then
    raise exception 'subject_keys and kinds must have one element per value (% keys, % kinds)', n, pg_catalog.cardinality(kinds)
      using errcode = '22023';
  end if;
  -- The pattern on each distinct kind (a batch has one or two); positions only if one fails.
  -- OFFSET 0: otherwise the planner pushes the test below the DISTINCT, into every element
  -- (a regular expression per value: a tenth of a 100k-value tokenize_many).
  if kinds is not null and exists (select from (select distinct k.k from unnest(kinds) as k (k) offset 0) d
                                   where d.k is null or d.k !~ '^[a-z][a-z0-9_]{0,62}$') then
    select pg_catalog.min(k.i) into bad from unnest(kinds) with ordinality as k (k, i)
    where k.k is null or k.k !~ '^[a-z][a-z0-9_]{0,62}$';
    raise exception 'kind #% must be a name of lower-case letters, digits and _ (e.g. email)', bad using errcode = '22023';
  end if;
  -- Registered subject table, scoped or not, first key valid; then, only if something is
  -- wrong further on, the whole batch for an error naming the position.
  subj := pii_internal.subject_kind(subject_kind);
  if n = 0 then
    return;
  end if;
  perform from pii_internal.resolve_subjects(subject_keys[1:1], scopes[1:1], kind => subj.kind);
  if pg_catalog.cardinality(scopes) not in (1, n) or pg_catalog.array_position(subject_keys, null) is not null
     or pg_catalog.array_position(scopes, null) is not null then
    perform from pii_internal.resolve_subjects(subject_keys, scopes, n, kind => subj.kind);
  end if;
  if pg_catalog.cardinality(scopes) = 1 and n > 1 then
    scopes := pg_catalog.array_fill(scopes[1], array[n]);
  end if;
  begin
    canonical := pii_internal.canonical_subjects(subj, subject_keys, scopes);
  exception when data_exception then
    -- Names the position of the bad key or scope, never its value.
    perform from pii_internal.resolve_subjects(subject_keys, scopes, n, kind => subj.kind);
    raise;
  end;
  found_keys := canonical.found_keys;
  found_scopes := canonical.found_scopes;
end
$$;
comment on function pii_internal.vault_subjects(text[], text[], text[], text) is 'Internal. Checks a tokenizing call''s kinds, keys and scopes (errors name positions) and returns its subject table and the subjects in canonical text by position.';

-- A token as SQL text over the SQL of its 96 bits (24 hex digits): tok_, the bits, and 32
-- bits of a keyed tag of them (read by the statement, never bound: pii_internal.hmac_sql).
create or replace function pii_internal.vault_token_sql(bits_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format($s$('tok_' operator(pg_catalog.||) %1$s operator(pg_catalog.||) pg_catalog.left(pg_catalog.encode(%2$s, 'hex'), 8))$s$,
    bits_sql, pii_internal.hmac_sql(pg_catalog.format($s$'vault_tag' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %s$s$, bits_sql)))
$$;
comment on function pii_internal.vault_token_sql(text) is 'Internal. SQL text of a token (tok_ + 96 bits + keyed 32-bit tag) over the SQL of its bits.';

-- Whether a token was issued by this install (a valid keyed tag), as SQL text: detokenize
-- answers erased for such a token that is no longer in the vault.
create or replace function pii_internal.vault_token_issued_sql(token_sql text) returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format($s$(%1$s ~ '^tok_[0-9a-f]{32}$' and %2$s operator(pg_catalog.=) %1$s)$s$,
    token_sql, pii_internal.vault_token_sql(pg_catalog.format('pg_catalog.substr(%s, 5, 24)', token_sql)))
$$;
comment on function pii_internal.vault_token_issued_sql(text) is 'Internal. SQL text: the token has the form and the keyed tag of a token this install issued.';

-- The 96 bits of a deterministic token as SQL text: a keyed hash of scope, kind and the
-- value under the kind's normaliser (never across scopes; nobody without the install key
-- can compute it).
create or replace function pii_internal.vault_deterministic_bits_sql(scope_sql text, kind_sql text, value_sql text, normaliser_sql text)
returns text
language sql immutable strict
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format($s$pg_catalog.left(pg_catalog.encode(%s, 'hex'), 24)$s$, pii_internal.hmac_sql(pg_catalog.format(
    $s$'vault_token' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) coalesce(%1$s, '')
       operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %2$s operator(pg_catalog.||) pg_catalog.chr(31)
       operator(pg_catalog.||) case %4$s
         when 'email' then pg_catalog.lower(pg_catalog.btrim(%3$s))
         when 'phone' then pg_catalog.regexp_replace(%3$s, '[^0-9+]', '', 'g')
         when 'trim' then pg_catalog.btrim(%3$s)
         else %3$s end$s$, scope_sql, kind_sql, value_sql, normaliser_sql)))
$$;
comment on function pii_internal.vault_deterministic_bits_sql(text, text, text, text) is 'Internal. SQL text of a deterministic token''s 96 bits: keyed hash of scope, kind and normalised value.';

-- The one audit row of a detokenize call (both modes), after checking its arguments.
create or replace function pii_internal.detokenize_audit(tokens text[], purpose text, client text) returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  n integer := coalesce(pg_catalog.cardinality(tokens), 0);
begin
  if tokens is null then
    raise exception 'tokens must not be NULL' using errcode = '22004';
  end if;
  if n > 1000000 then
    raise exception '% tokens in one call; the limit is 1000000', n using errcode = '54000', hint = 'Split the batch.';
  end if;
  -- Purpose and client are kept in the audit row: a restricted alphabet keeps an e-mail
  -- address or a phone number (+) out of it.
  if purpose is null or purpose !~ '^[A-Za-z0-9][A-Za-z0-9 _.:/#-]{0,99}$' then
    raise exception 'purpose must be 1 to 100 letters, digits, spaces or _.:/#- (e.g. campaign:4711)' using errcode = '22023';
  end if;
  if client is not null and client !~ '^[A-Za-z0-9][A-Za-z0-9 _.:/#-]{0,99}$' then
    raise exception 'client must be 1 to 100 letters, digits, spaces or _.:/#-' using errcode = '22023';
  end if;
  perform pii_internal.write_audit('detokenize', null, pg_catalog.jsonb_build_object(
    'role', case when pg_catalog.current_setting('role') = 'none' then session_user::text else pg_catalog.current_setting('role') end,
    'purpose', purpose, 'client', client, 'tokens', n,
    'token_list_hash', pg_catalog.encode(pii_internal.hmac('detokenize' || pg_catalog.chr(31) || pg_catalog.array_to_string(tokens, pg_catalog.chr(31), '')), 'hex')));
end
$$;
comment on function pii_internal.detokenize_audit(text[], text, text) is 'Internal. Checks a detokenize call''s tokens, purpose and client and writes its one audit row (counts and a keyed hash of the token list).';

---------------------------------------------------------------------------------------
-- Binding the vault to a key store.

create or replace function pii.vault_use_key_store(store_id uuid)
returns void
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  bound uuid;
begin
  if store_id is null then
    raise exception 'store_id must not be NULL' using errcode = '22004', hint = 'lethe key-store init prints the store''s id; lethe key-store bind binds it.';
  end if;
  -- Waits for tokenize calls holding the KEK (FOR SHARE), so none wraps a key here after the check.
  perform from pii_internal.vault_kek for update;
  bound := pii_internal.vault_key_store_id();
  if bound operator(pg_catalog.=) store_id then
    return;
  end if;
  if bound is not null then
    raise exception 'the vault is bound to another key store' using errcode = '55000',
      hint = 'A vault keeps the key store it was bound to: its keys are there.';
  end if;
  if exists (select from pii_internal.vault_keys k where k.wrapped_key is not null) then
    raise exception 'the vault holds data keys in this database already' using errcode = '55000',
      hint = 'Bind the key store before the first tokenize; moving existing keys into a key store is not supported.';
  end if;
  insert into pii_internal.vault_key_store (store_id) values (vault_use_key_store.store_id);
  perform pii_internal.write_audit('vault_use_key_store', null, pg_catalog.jsonb_build_object('store_id', store_id));
end
$$;
comment on function pii.vault_use_key_store(uuid) is
$$Binds the vault to a separate key store (by the store's id): from then on the data keys live there, this database
keeps key ids and ciphertext only, and tokenize/detokenize go through Lethe's TypeScript layer with the key store.
Only before the first tokenize (55000 if data keys are here already); binding the same store again does nothing.
pii_admin only; lethe key-store bind does it. Example: select pii.vault_use_key_store('0f6c…'::uuid);$$;

create or replace function pii.vault_key_location(out location text, out store_id uuid)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when s.store_id is null then 'database' else 'key_store' end, s.store_id
  from (select pii_internal.vault_key_store_id() as store_id) s
$$;
comment on function pii.vault_key_location() is
$$Where the vault's data keys are: location database (wrapped by the KEK in this database) or key_store (a separate
key store, store_id its id). Example: select * from pii.vault_key_location();$$;

---------------------------------------------------------------------------------------
-- Tokenize with the key store: pii.vault_key_ids, then the caller has the store make or
-- give the keys and encrypts, then pii.store_tokens.

create or replace function pii.vault_key_ids(subject_keys text[], scopes text[] default null, subject_kind text default null)
returns table (ordinality bigint, key_id uuid)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
declare
  input record;
  key_ids uuid[];
begin
  if pii_internal.vault_key_store_id() is null then
    raise exception 'the vault keeps its data keys in this database: use pii.tokenize_many' using errcode = '55000';
  end if;
  input := pii_internal.vault_subjects(subject_keys, null, scopes, subject_kind);
  if coalesce(pg_catalog.cardinality(subject_keys), 0) = 0 then
    return;
  end if;
  -- New subjects get a random key id (a concurrent call for the same new subject makes the
  -- same row: the conflict keeps the first); a tombstoned subject gets none.
  execute pg_catalog.format(
    $q$with u as (
         select u.i, %1$s as h from unnest($1::text[], $2::text[]) with ordinality as u (k, s, i)),
       live as (
         select distinct u.h from u where not exists (select from pii_internal.tombstones tb where tb.subject_hash operator(pg_catalog.=) u.h)),
       made as (
         insert into pii_internal.vault_keys (subject_hash, key_id)
         select l.h, pg_catalog.gen_random_uuid() from live l
         where not exists (select from pii_internal.vault_keys k where k.subject_hash operator(pg_catalog.=) l.h)
         on conflict (subject_hash) do nothing
         returning subject_hash, key_id)
     select pg_catalog.array_agg(coalesce(m.key_id, k.key_id) order by u.i)
     from u left join live l on l.h operator(pg_catalog.=) u.h
     left join made m on m.subject_hash operator(pg_catalog.=) l.h
     left join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) l.h$q$,
    pii_internal.kind_hash_sql((input.subj).kind, 'u.s', 'u.k'))
    into key_ids using input.found_keys, input.found_scopes;
  return query select u.i, u.id from unnest(key_ids) with ordinality as u (id, i);
end
$fn$;
comment on function pii.vault_key_ids(text[], text[], text) is
$$With the vault bound to a key store: each subject's data-key id, in input order (made for a new subject; NULL for a
subject with a tombstone). The caller then gets the keys from the key store, encrypts and calls pii.store_tokens;
Lethe's TypeScript layer does all three (createLethe({ keyStore }).tokenize). pii_operator and pii_admin.
Example: select * from pii.vault_key_ids(array['42', '43']);$$;

create or replace function pii.store_tokens(subject_keys text[], kinds text[], key_ids uuid[], ciphertexts bytea[],
                                            "values" text[] default null, scopes text[] default null, subject_kind text default null)
returns table (ordinality bigint, token text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
declare
  n integer := coalesce(pg_catalog.cardinality(subject_keys), 0);
  input record;
  checked record;
  bad integer;
  tokens text[];
  tokenized bigint;
begin
  if pii_internal.vault_key_store_id() is null then
    raise exception 'the vault keeps its data keys in this database: use pii.tokenize_many' using errcode = '55000';
  end if;
  if subject_keys is null or kinds is null or key_ids is null or ciphertexts is null then
    raise exception 'subject_keys, kinds, key_ids and ciphertexts must not be NULL' using errcode = '22004';
  end if;
  if pg_catalog.cardinality(key_ids) <> n or pg_catalog.cardinality(ciphertexts) <> n
     or ("values" is not null and pg_catalog.cardinality("values") <> n) then
    raise exception 'key_ids, ciphertexts and values must have one element per subject key (% keys)', n using errcode = '22023';
  end if;
  input := pii_internal.vault_subjects(subject_keys, kinds, scopes, subject_kind);
  if n = 0 then
    return;
  end if;
  select pg_catalog.min(c.i) into bad from unnest(ciphertexts) with ordinality as c (c, i)
  where pg_catalog.length(c.c) < 32 or (pg_catalog.length(c.c) - 16) % 16 <> 0;
  if bad is not null then
    raise exception 'ciphertext #% is not a 16-byte IV followed by AES-256-CBC blocks', bad using errcode = '22023';
  end if;
  -- Per position: the subject's hash, whether it has a tombstone (its key id and ciphertext
  -- may be NULL: it gets no token), and the first position whose key id is not its
  -- subject's or lacks its ciphertext (or whose deterministic kind lacks its value).
  execute pg_catalog.format(
    $q$with u as (
         select u.i, %1$s as h, u.kid, u.ct, u.kind, u.v
         from unnest($1::text[], $2::text[], $3::uuid[], $4::bytea[], $5::text[], $6::text[]) with ordinality as u (k, s, kid, ct, kind, v, i)),
       c as (
         select u.i, u.h, tb.subject_hash is not null as gone,
                tb.subject_hash is null and (k.key_id is null or u.kid is null or k.key_id operator(pg_catalog.<>) u.kid or u.ct is null) as wrong_key,
                tb.subject_hash is null and vk.deterministic and u.v is null as no_value
         from u left join pii_internal.tombstones tb on tb.subject_hash operator(pg_catalog.=) u.h
         left join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) u.h
         left join pii.vault_kinds vk on vk.kind operator(pg_catalog.=) u.kind)
     select pg_catalog.array_agg(c.h order by c.i) as hashes, pg_catalog.array_agg(c.gone order by c.i) as gone,
            pg_catalog.min(c.i) filter (where c.wrong_key) as wrong_key, pg_catalog.min(c.i) filter (where c.no_value) as no_value
     from c$q$,
    pii_internal.kind_hash_sql((input.subj).kind, 'u.s', 'u.k'))
    into checked using input.found_keys, input.found_scopes, key_ids, ciphertexts, kinds, "values";
  if checked.wrong_key is not null then
    raise exception 'key id #% is not the data key of its subject, or ciphertext #% is missing', checked.wrong_key, checked.wrong_key using errcode = '22023',
      hint = 'Take the key ids from pii.vault_key_ids for these subjects.';
  end if;
  if checked.no_value is not null then
    raise exception 'value #% is needed: its kind is deterministic (its token is a keyed hash of the value)', checked.no_value using errcode = '22004';
  end if;
  -- One statement: the tokens (random: SHA-256 of a per-statement seed from the server's
  -- strong random source, read by the statement, and the position; deterministic as in
  -- pii.tokenize_many) and the entries. A deterministic token asked for twice belongs to
  -- its first subject in input order.
  execute pg_catalog.format(
    $q$with u as (
         select u.i, u.h, u.kind, u.ct,
                case when not u.gone then %1$s end as t
         from unnest($1::bytea[], $2::boolean[], $3::text[], $4::bytea[], $5::text[], $6::text[]) with ordinality as u (h, gone, kind, ct, v, s, i)
         left join pii.vault_kinds vk on vk.kind operator(pg_catalog.=) u.kind
         cross join lateral (select case when vk.deterministic then %2$s
                                         else pg_catalog.left(pg_catalog.encode(pg_catalog.sha256(
                                                (select pg_catalog.sha256(pg_catalog.uuid_send(pg_catalog.gen_random_uuid())
                                                                          operator(pg_catalog.||) pg_catalog.uuid_send(pg_catalog.gen_random_uuid())))
                                                operator(pg_catalog.||) pg_catalog.int8send(u.i)), 'hex'), 24) end as b) b),
       entries as (
         insert into pii_internal.vault_entries (token, subject_hash, kind, ciphertext)
         select u.t, u.h, u.kind, u.ct from u where u.t is not null order by u.i
         on conflict (token) do nothing)
     select pg_catalog.array_agg(u.t order by u.i), pg_catalog.count(u.t) from u$q$,
    pii_internal.vault_token_sql('b.b'),
    pii_internal.vault_deterministic_bits_sql('u.s', 'u.kind', 'u.v', 'vk.normaliser'))
    into tokens, tokenized
    using checked.hashes, checked.gone, kinds, ciphertexts, "values", input.found_scopes;
  perform pii_internal.write_audit('tokenize', null, pg_catalog.jsonb_build_object(
    'values', n, 'tokenized', tokenized, 'refused_tombstoned', n - tokenized, 'keys', 'key_store'));
  -- In the select list (ProjectSet): unnest in FROM would store every row in a tuplestore first.
  return query select pg_catalog.generate_series(1::bigint, pg_catalog.cardinality(tokens)), pg_catalog.unnest(tokens);
end
$fn$;
comment on function pii.store_tokens(text[], text[], uuid[], bytea[], text[], text[], text) is
$$With the vault bound to a key store: stores values the caller encrypted (16-byte random IV || AES-256-CBC/PKCS under
the subject's data key from the store, key ids from pii.vault_key_ids) and returns their tokens in input order, as
pii.tokenize_many does (NULL for a subject with a tombstone). values are needed only for deterministic kinds (the token
is a keyed hash of the value); a random kind's value never reaches the database. pii_operator and pii_admin; Lethe's
TypeScript layer calls it (createLethe({ keyStore }).tokenize).
Example: select * from pii.store_tokens(array['42'], array['email'], array['…'::uuid], array['\x…'::bytea]);$$;

-- Detokenize with the key store: the entries' ciphertext and key ids; the caller gets the
-- keys from the store and decrypts. One audit row per call, as pii.detokenize.
create or replace function pii.detokenize_ciphertexts(tokens text[], purpose text, client text default null)
returns table (token text, kind text, key_id uuid, ciphertext bytea, status text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
begin
  if pii_internal.vault_key_store_id() is null then
    raise exception 'the vault keeps its data keys in this database: use pii.detokenize' using errcode = '55000';
  end if;
  perform pii_internal.detokenize_audit(tokens, purpose, client);
  -- One pass in request order, each token's entry and its subject's key id by index probes
  -- (the tokens through a sub-select, so the planner never hashes the whole vault).
  return query execute pg_catalog.format(
    $q$select u.t, e.kind, k.key_id, case when k.key_id is not null then e.ciphertext end,
              case when k.key_id is not null then 'ok' when e.subject_hash is not null or %s then 'erased' else 'unknown' end
       from unnest((select $1::text[])) with ordinality as u (t, i)
       left join pii_internal.vault_entries e on e.token operator(pg_catalog.=) u.t
       left join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) e.subject_hash
       order by u.i$q$,
    pii_internal.vault_token_issued_sql('u.t'))
    using tokens;
end
$fn$;
comment on function pii.detokenize_ciphertexts(text[], text, text) is
$$With the vault bound to a key store: one row per token in request order with kind, the data-key id, the ciphertext
(16-byte IV || AES-256-CBC) and status ok | erased | unknown; the caller gets the keys from the key store and
decrypts (Lethe's TypeScript layer and lethe pii-api --key-store-url do). Exactly one audit row per call, as
pii.detokenize. pii_dispatcher only. Example: select * from pii.detokenize_ciphertexts(array['tok_…'], 'campaign:4711');$$;

---------------------------------------------------------------------------------------
-- Shredding in the key store: the worker takes queued key ids, has the store destroy the
-- keys, then confirms; a crash in between only makes the store destroy them again.

create or replace function pii.vault_pending_shreds(max_keys integer default 1000)
returns table (key_id uuid, queued_at timestamptz)
language sql stable security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select q.key_id, q.queued_at from pii_internal.vault_shred_queue q
  order by q.queued_at, q.key_id limit greatest(coalesce(max_keys, 1000), 1)
$$;
comment on function pii.vault_pending_shreds(integer) is
$$With the vault bound to a key store: the oldest data-key ids of erased subjects the store has still to destroy
(random ids, nothing of the subject). The worker's lethe_vault_shred task destroys them and calls
pii.vault_confirm_shreds. pii_operator, pii_admin, pii_auditor. Example: select * from pii.vault_pending_shreds(100);$$;

create or replace function pii.vault_confirm_shreds(key_ids uuid[])
returns integer
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  n integer;
begin
  if key_ids is null then
    raise exception 'key_ids must not be NULL' using errcode = '22004';
  end if;
  delete from pii_internal.vault_shred_queue q where q.key_id operator(pg_catalog.=) any (key_ids);
  get diagnostics n = row_count;
  if n > 0 then
    perform pii_internal.write_audit('vault_shred', null, pg_catalog.jsonb_build_object('data_keys', n));
  end if;
  return n;
end
$$;
comment on function pii.vault_confirm_shreds(uuid[]) is
$$Records that the key store destroyed these data keys (ids from pii.vault_pending_shreds): they leave the queue and
one audit row counts them. pii_operator and pii_admin; the worker's lethe_vault_shred task calls it.
Example: select pii.vault_confirm_shreds(array['…'::uuid]);$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.vault_key_location() to pii_admin, pii_operator, pii_dispatcher, pii_auditor;
grant execute on function pii.vault_key_ids(text[], text[], text), pii.store_tokens(text[], text[], uuid[], bytea[], text[], text[], text),
  pii.vault_confirm_shreds(uuid[]) to pii_operator, pii_admin;
grant execute on function pii.vault_pending_shreds(integer) to pii_operator, pii_admin, pii_auditor;
grant execute on function pii.detokenize_ciphertexts(text[], text, text) to pii_dispatcher;
grant execute on function pii.vault_use_key_store(uuid) to pii_admin;
