-- Tokenized contact vault (F18, F19, F24), code: tokenize, detokenize, crypto-shredding
-- on erasure, the residual check verification calls, and PII API keys. Repeatable
-- (create or replace; triggers dropped and re-created), re-applied by lethe migrate.

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
-- one per value (scoped installs). Subjects are hashed as the rest of Lethe does (keys
-- cast through the key column's type), so erasure finds their entries. A subject with a
-- tombstone (asked to be forgotten) gets no entry and a NULL token.
create or replace function pii.tokenize_many(subject_keys text[], kinds text[], "values" text[], scopes text[] default null)
returns table (ordinality bigint, token text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
declare
  subj pii.subject_table;
  sec pii.secret;
  n integer := coalesce(pg_catalog.cardinality(subject_keys), 0);
  bad integer;
  hashes bytea[];
  tokens text[];
  any_deterministic boolean;
  new_keys text;
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
  select pg_catalog.min(k.i) into bad from unnest(kinds) with ordinality as k (k, i)
  where k.k is null or k.k !~ '^[a-z][a-z0-9_]{0,62}$';
  if bad is not null then
    raise exception 'kind #% must be a name of lower-case letters, digits and _ (e.g. email)', bad using errcode = '22023';
  end if;
  bad := pg_catalog.array_position("values", null);
  if bad is not null then
    raise exception 'value #% is NULL', bad using errcode = '22004';
  end if;
  -- Registered subject table, scoped or not, first key valid; then, only if something is
  -- wrong further on, the whole batch for an error naming the position.
  perform from pii_internal.resolve_subjects(subject_keys[1:1], scopes[1:1]);
  if pg_catalog.cardinality(scopes) not in (1, n) or pg_catalog.array_position(subject_keys, null) is not null
     or pg_catalog.array_position(scopes, null) is not null then
    perform from pii_internal.resolve_subjects(subject_keys, scopes, n);
  end if;
  if pg_catalog.cardinality(scopes) = 1 and n > 1 then
    scopes := pg_catalog.array_fill(scopes[1], array[n]);
  end if;
  select * into subj from pii.subject_table;
  select * into sec from pii.secret;

  begin
    execute pg_catalog.format(
      $q$select pg_catalog.array_agg(x.h order by x.i),
                pg_catalog.array_agg('tok_' operator(pg_catalog.||) x.b operator(pg_catalog.||) pg_catalog.left(pg_catalog.encode(%s, 'hex'), 8) order by x.i),
                pg_catalog.bool_or(x.det)
         from (select u.i, h.h, coalesce(vk.deterministic, false) as det,
                      case when tb.subject_hash is not null then null
                           when vk.deterministic then pg_catalog.left(pg_catalog.encode(%s, 'hex'), 24)
                           else pg_catalog.encode(@crypto@.gen_random_bytes(12), 'hex') end as b
               from unnest($1, $2, $5, $6) with ordinality as u (k, s, kind, v, i)
               cross join lateral (select (u.k::%s)::text as k, %s as s) c
               cross join lateral (select %s as h) h
               left join pii.vault_kinds vk on vk.kind operator(pg_catalog.=) u.kind
               left join pii.tombstones tb on tb.subject_hash operator(pg_catalog.=) h.h) x$q$,
      pii_internal.hmac_sql($s$'vault_tag' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) x.b$s$),
      pii_internal.hmac_sql($s$'vault_token' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) coalesce(c.s, '')
                      operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) u.kind operator(pg_catalog.||) pg_catalog.chr(31)
                      operator(pg_catalog.||) case vk.normaliser
                        when 'email' then pg_catalog.lower(pg_catalog.btrim(u.v))
                        when 'phone' then pg_catalog.regexp_replace(u.v, '[^0-9+]', '', 'g')
                        when 'trim' then pg_catalog.btrim(u.v)
                        else u.v end$s$),
      pii_internal.column_type(subj.relid, subj.key_attnum),
      case when subj.scope_attnum is null then 'null::text'
           else pg_catalog.format('(u.s::%s)::text', pii_internal.column_type(subj.relid, subj.scope_attnum)) end,
      pii_internal.subject_hash_sql('c.s', 'c.k'))
      into hashes, tokens, any_deterministic
      using subject_keys, coalesce(scopes, pg_catalog.array_fill(null::text, array[n])), sec.inner_key, sec.outer_key, kinds, "values";
  exception when data_exception then
    -- Names the position of the bad key or scope, never its value.
    perform from pii_internal.resolve_subjects(subject_keys, scopes, n);
    raise;
  end;

  -- Plain INSERTs: ON CONFLICT's speculative insertion costs about as much again per row.
  -- A data key created concurrently for the same new subject (two signups of one person
  -- at the same moment) is the only possible conflict: then again, tolerating it.
  new_keys := $q$insert into pii_internal.vault_keys (subject_hash, wrapped_key)
       select d.h, @crypto@.encrypt(@crypto@.gen_random_bytes(32), kek.kek, 'aes')
       from (select distinct u.h from unnest($1::bytea[], $2::text[]) as u (h, t) where u.t is not null) d
       cross join pii_internal.vault_kek kek
       where not exists (select from pii_internal.vault_keys k where k.subject_hash operator(pg_catalog.=) d.h) %s$q$;
  begin
    execute pg_catalog.format(new_keys, '') using hashes, tokens;
  exception when unique_violation then
    execute pg_catalog.format(new_keys, 'on conflict (subject_hash) do nothing') using hashes, tokens;
  end;

  -- The IV is the token's own 128 bits (96 random, or for a deterministic kind keyed-hash,
  -- and the keyed tag): unpredictable before the call, never reused under one key.
  -- Random tokens cannot collide (128 bits); deterministic ones repeat by design.
  execute pg_catalog.format(
    $q$insert into pii_internal.vault_entries (token, subject_hash, kind, ciphertext)
       select x.t, x.h, x.kind,
              x.iv operator(pg_catalog.||) @crypto@.encrypt_iv(pg_catalog.convert_to(x.v, 'UTF8'), @crypto@.decrypt(k.wrapped_key, kek.kek, 'aes'), x.iv, 'aes-cbc/pad:pkcs')
       from (select u.t, u.h, u.kind, u.v, pg_catalog.decode(pg_catalog.substr(u.t, 5), 'hex') as iv
             from unnest($1::text[], $2::bytea[], $3::text[], $4::text[]) as u (t, h, kind, v) where u.t is not null) x
       join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) x.h
       cross join pii_internal.vault_kek kek
       %s$q$, case when any_deterministic then 'on conflict (token) do nothing' else '' end)
    using tokens, hashes, kinds, "values";

  perform pii_internal.write_audit('tokenize', null, pg_catalog.jsonb_build_object(
    'values', n, 'tokenized', (select pg_catalog.count(u.t) from unnest(tokens) as u (t)),
    'refused_tombstoned', (select pg_catalog.count(*) - pg_catalog.count(u.t) from unnest(tokens) as u (t))));
  return query select u.i, u.t from unnest(tokens) with ordinality as u (t, i);
end
$fn$;

-- Looks tokens up for sending. One audit row per call, whatever the number of tokens.
create or replace function pii.detokenize(tokens text[], purpose text, client text default null)
returns table (token text, kind text, value text, status text)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $fn$
#variable_conflict use_column
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
  -- Not in the vault but carrying a valid keyed tag: issued by this install, so erased.
  return query
    select u.t, e.kind,
           pg_catalog.convert_from(@crypto@.decrypt_iv(pg_catalog.substr(e.ciphertext, 17), @crypto@.decrypt(k.wrapped_key, kek.kek, 'aes'),
                                                       pg_catalog.substr(e.ciphertext, 1, 16), 'aes-cbc/pad:pkcs'), 'UTF8'),
           case when k.subject_hash is not null then 'ok'
                when e.token is not null then 'erased'
                when u.t ~ '^tok_[0-9a-f]{32}$'
                     -- The key read by the statement, not a plpgsql variable (a plan constant: see pii_internal.hmac_sql).
                     and pg_catalog.substr(u.t, 29) = pg_catalog.left(pg_catalog.encode(pg_catalog.sha256((select s.outer_key from pii.secret s) operator(pg_catalog.||) pg_catalog.sha256(
                           (select s.inner_key from pii.secret s) operator(pg_catalog.||) pg_catalog.convert_to('vault_tag' operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) pg_catalog.substr(u.t, 5, 24), 'UTF8'))), 'hex'), 8)
                  then 'erased'
                else 'unknown' end
    from unnest(tokens) with ordinality as u (t, i)
    left join pii_internal.vault_entries e on e.token operator(pg_catalog.=) u.t
    left join pii_internal.vault_keys k on k.subject_hash operator(pg_catalog.=) e.subject_hash
    cross join pii_internal.vault_kek kek
    order by u.i;
end
$fn$;

$code$, '@crypto@', pg_catalog.quote_ident((select n.nspname from pg_catalog.pg_namespace n where n.oid = crypto_oid)));
end
$install$;

comment on function pii.tokenize_many(text[], text[], text[], text[]) is
$$Tokenizes values set-based: each value is stored encrypted (AES-256) under its subject's data key; returns
(ordinality, token) in input order. Tokens are random (tok_ + 32 hex) unless the kind is deterministic
(pii.set_token_kind): then the same scope + kind + normalised value gives the same token. Subjects with a tombstone get
NULL and nothing is stored. Callable by pii_operator and pii_admin.
Example: select * from pii.tokenize_many(array['42', '43'], array['email', 'email'], array['a@example.com', 'b@example.com']);$$;

create or replace function pii.tokenize(subject_key text, kind text, value text, scope text default null)
returns text
language sql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
  select t.token from pii.tokenize_many(array[subject_key], array[kind], array[value],
                                        case when scope is null then null else array[scope] end) t
$$;
comment on function pii.tokenize(text, text, text, text) is
$$Tokenizes one value of a subject (see pii.tokenize_many). Store the token in your table instead of the value.
Example: insert into app.customers (id, email_token) values (42, pii.tokenize('42', 'email', 'someone@example.org'));$$;

comment on function pii.detokenize(text[], text, text) is
$$Resolves tokens at send time: one row per token in request order, with kind, value and status ok | erased | unknown
(an erased or unknown token never fails the batch). Writes exactly one audit row per call (role, purpose, client,
count, keyed hash of the token list; never tokens or values). purpose (and client) use letters, digits, spaces and
_.:/#- only. pii_dispatcher only. Example: select * from pii.detokenize(array['tok_…'], 'campaign:4711');$$;

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
  delete from pii_internal.vault_keys k where k.subject_hash operator(pg_catalog.=) any (erased);
  return null;
end
$$;
comment on function pii_internal.vault_shred_erased() is 'Internal. Trigger on pii.tombstones: destroys the vault entries and data keys of subjects marked erased, in the same statement.';

create or replace trigger vault_shred_on_erase_insert after insert on pii.tombstones
  referencing new table as erased_tombstones for each statement execute function pii_internal.vault_shred_erased();
create or replace trigger vault_shred_on_erase_update after update on pii.tombstones
  referencing new table as erased_tombstones for each statement execute function pii_internal.vault_shred_erased();
-- Also under session_replication_role = replica (which silences ordinary triggers).
alter table pii.tombstones enable always trigger vault_shred_on_erase_insert;
alter table pii.tombstones enable always trigger vault_shred_on_erase_update;

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
  select 'pii_internal.vault_keys', 'wrapped_key', pg_catalog.encode(k.subject_hash, 'hex'), 'data key of an erased subject not destroyed'
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
grant execute on function pii.tokenize_many(text[], text[], text[], text[]), pii.tokenize(text, text, text, text)
  to pii_operator, pii_admin;
grant execute on function pii.detokenize(text[], text, text), pii.api_key_scope(bytea, uuid) to pii_dispatcher;
grant execute on function pii.set_token_kind(text, boolean, text), pii.create_api_key(text, bytea, text),
  pii.revoke_api_key(text) to pii_admin;
grant select on pii.api_key_list to pii_admin, pii_auditor;
