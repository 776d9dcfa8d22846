-- The vault's data keys in a separate key store (issue 14, keys mode b; opt-in). The key
-- store is a second database (or any KMS-shaped service behind src/vault/keyStore.ts)
-- whose own backups are short-lived; this database then holds, per subject, only the id
-- of its data key, and per token the ciphertext, which the TypeScript layer makes and
-- opens. A backup of this database restored from before an erasure therefore holds no key
-- of the erased subject: the key store destroyed it. The code is
-- db/code/94_vault_key_store.sql.

-- Which key store this vault is bound to (no row: the data keys are in this database,
-- wrapped by the KEK). The TypeScript layer checks the store's own id against it, so a
-- process pointed at the wrong store fails instead of making keys nobody will find.
create table pii_internal.vault_key_store (
  singleton boolean primary key default true check (singleton),
  store_id uuid not null,
  bound_at timestamptz not null default pg_catalog.now(),
  bound_by name not null default session_user
);
revoke all on pii_internal.vault_key_store from public;
comment on table pii_internal.vault_key_store is 'The separate key store the vault''s data keys live in (one row), by the store''s id; no row: the keys are in this database (pii_internal.vault_keys.wrapped_key).';

-- A subject's data key is either here (wrapped by the KEK) or in the key store (by id).
alter table pii_internal.vault_keys
  alter column wrapped_key drop not null,
  add column key_id uuid,
  add constraint vault_keys_key_id_key unique (key_id),
  add constraint vault_keys_one_key check ((wrapped_key is null) <> (key_id is null));
comment on column pii_internal.vault_keys.key_id is 'Id of the subject''s data key in the separate key store (random; NULL when the key is wrapped here).';

-- Key ids whose subjects were erased, until the key store has destroyed the keys (the
-- worker's lethe_vault_shred task, or lethe key-store shred): filled by the shredding
-- trigger in the erasure's own transaction, emptied once the store confirms.
create table pii_internal.vault_shred_queue (
  key_id uuid primary key,
  queued_at timestamptz not null default pg_catalog.now()
);
create index vault_shred_queue_queued_at_idx on pii_internal.vault_shred_queue (queued_at);
revoke all on pii_internal.vault_shred_queue from public;
comment on table pii_internal.vault_shred_queue is 'Data-key ids of erased subjects the separate key store has still to destroy (random ids: nothing of the subject).';
