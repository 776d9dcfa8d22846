-- Tokenized contact vault (F18, F24), state: values encrypted under per-subject data
-- keys, data keys wrapped by a key-encryption key only Lethe's owner can read. The code
-- (functions, triggers, grants) is db/code/93_vault.sql. The owner-only tables live in
-- pii_internal (no group role has USAGE); pii keeps what group roles read.

-- pgcrypto: a trusted extension (a database owner may create it). Use the one that is
-- there, in whatever schema; otherwise install it in a schema of its own, out of every
-- search_path, so it shadows nothing and Lethe's pii schema holds only Lethe's functions.
do $$
begin
  if not exists (select from pg_catalog.pg_extension e where e.extname = 'pgcrypto') then
    create schema if not exists pii_crypto;
    revoke all on schema pii_crypto from public;
    comment on schema pii_crypto is 'Lethe: pgcrypto, installed here because the database had none. Called schema-qualified only.';
    create extension pgcrypto schema pii_crypto;
  end if;
end
$$;

-- The key-encryption key (AES-256). Only the owner of the pii schema (Lethe's SECURITY
-- DEFINER functions) can read it, as pii.secret.
create table pii_internal.vault_kek (
  singleton boolean primary key default true check (singleton),
  kek bytea not null check (pg_catalog.length(kek) = 32),
  created_at timestamptz not null default pg_catalog.now()
);
revoke all on pii_internal.vault_kek from public;
comment on table pii_internal.vault_kek is 'Key-encryption key of the vault (AES-256) wrapping every per-subject data key. Readable by the Lethe owner only.';

do $$
declare
  crypto name := (select n.nspname from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
                  where e.extname = 'pgcrypto');
begin
  execute pg_catalog.format('insert into pii_internal.vault_kek (kek) select %I.gen_random_bytes(32)', crypto);
end
$$;

-- One data key per subject (AES-256, wrapped by the KEK). Erasure deletes it: every
-- ciphertext of that subject, in this database and in any later backup, is noise.
create table pii_internal.vault_keys (
  subject_hash bytea primary key,
  wrapped_key bytea not null,
  created_at timestamptz not null default pg_catalog.now()
);
revoke all on pii_internal.vault_keys from public;
comment on table pii_internal.vault_keys is 'Per-subject data keys, wrapped by pii_internal.vault_kek; subjects as keyed hashes (pii.subject_hash). Deleted on erasure.';

-- One row per token: the value (16-byte IV || AES-256-CBC ciphertext) under its
-- subject's data key.
create table pii_internal.vault_entries (
  token text primary key,
  subject_hash bytea not null,
  kind text not null,
  ciphertext bytea not null,
  created_at timestamptz not null default pg_catalog.now()
);
create index vault_entries_subject_hash_idx on pii_internal.vault_entries (subject_hash);
revoke all on pii_internal.vault_entries from public;
comment on table pii_internal.vault_entries is 'Vault entries: token, subject (keyed hash), kind, encrypted value. Deleted on erasure.';

-- Token kinds with a policy. Undeclared kinds get random tokens with the value as given.
create table pii.vault_kinds (
  kind text primary key check (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
  deterministic boolean not null default false,
  normaliser text not null default 'none' check (normaliser in ('none', 'trim', 'email', 'phone')),
  declared_at timestamptz not null default pg_catalog.now()
);
revoke all on pii.vault_kinds from public;
grant select on pii.vault_kinds to pii_admin, pii_operator;
comment on table pii.vault_kinds is 'Token kinds: deterministic (same scope + kind + normalised value -> same token) and the normaliser. Set with pii.set_token_kind.';

-- Keys of the PII API (lethe pii-api): stored as SHA-256 of the key (keys are 256 random
-- bits, so a fast hash is enough), never the key. Scope dispatcher may look values up;
-- ping may only check that it authenticates.
create table pii_internal.api_keys (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  name text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
  key_hash bytea not null unique check (pg_catalog.length(key_hash) = 32),
  scope text not null default 'dispatcher' check (scope in ('dispatcher', 'ping')),
  created_by name not null default session_user,
  created_at timestamptz not null default pg_catalog.now(),
  revoked_at timestamptz
);
create unique index api_keys_active_name_idx on pii_internal.api_keys (name) where revoked_at is null;
revoke all on pii_internal.api_keys from public;
comment on table pii_internal.api_keys is 'PII API keys: name, SHA-256 of the key (never the key), scope (dispatcher | ping), revocation time.';
