-- The vault's key-encryption key may live outside the database (external KEK mode): then
-- pii_internal.vault_kek keeps only a check value of it (kek NULL), so a dump or backup of
-- this database holds wrapped data keys and ciphertext but nothing that unwraps them. The
-- session that tokenizes or detokenizes brings the KEK in its startup packet
-- (options=-c lethe.vault_kek=<hex>), which no log line records. The code is
-- db/code/93_vault.sql (pii_internal.vault_open_kek, pii.vault_rotate_kek).

-- The check value: SHA-256 of a fixed label and the KEK. The KEK is 256 random bits, so
-- the check reveals nothing of it and tells a wrong KEK from the right one before any key
-- is wrapped under it.
alter table pii_internal.vault_kek
  alter column kek drop not null,
  add column kek_check bytea,
  add column rotated_at timestamptz;

update pii_internal.vault_kek
set kek_check = pg_catalog.sha256(pg_catalog.convert_to('lethe vault kek check', 'UTF8') operator(pg_catalog.||) kek);

alter table pii_internal.vault_kek
  alter column kek_check set not null,
  add constraint vault_kek_check_length check (pg_catalog.length(kek_check) = 32);

comment on table pii_internal.vault_kek is
  'Key-encryption key of the vault (AES-256) wrapping every per-subject data key, readable by the Lethe owner only; kek is NULL in external KEK mode (the sessions bring it), kek_check identifies it in both modes.';
comment on column pii_internal.vault_kek.kek is 'The KEK when it is embedded; NULL when it is held outside the database (external KEK mode).';
comment on column pii_internal.vault_kek.kek_check is 'sha256(''lethe vault kek check'' || KEK): tells the right KEK from a wrong one, reveals nothing of it.';
comment on column pii_internal.vault_kek.rotated_at is 'When pii.vault_rotate_kek last rewrapped the data keys under a new KEK.';
