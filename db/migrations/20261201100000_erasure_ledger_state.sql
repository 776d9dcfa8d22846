-- migrate:up
-- State for restore-safe erasure (F30, F37): the erasure ledger, the hash chains over it
-- and over pii.audit, and where the worker's external copy of the ledger stands.
-- The functions and triggers live in the companion code migration (…100001).

-- One head per chain: the last link's sequence number and entry hash. Appends lock the
-- head row, so entries of one chain are numbered and linked one transaction at a time.
create table pii.chain_heads (
  chain text primary key check (chain in ('audit', 'erasure_ledger')),
  seq bigint not null default 0,
  last_hash bytea
);
comment on table pii.chain_heads is 'Head of each hash chain (audit, erasure_ledger): last sequence number and entry hash. Locked by every append.';
revoke all on pii.chain_heads from public;

-- Every finished erasure, one entry per subject: keyed hashes only, never a key.
create table pii.erasure_ledger (
  seq bigint primary key,
  subject_hash bytea not null,
  -- Keyed hashes of the subject's identifiers (email, phone…) once identifier columns
  -- exist; NULL until then.
  identifier_hashes bytea[],
  -- Subject kind once several kinds exist; NULL means the install's only subject table.
  kind text,
  scoped boolean not null,
  mode text not null check (mode in ('erase', 'delete', 'return')),
  request_id uuid,
  erased_at timestamptz not null,
  -- Which HMAC secret made the hashes (a keyed fingerprint, see pii.secret_id()).
  secret_id text not null,
  prev_hash bytea,
  entry_hash bytea not null
);
comment on table pii.erasure_ledger is 'Append-only, hash-chained record of every finished erasure (one entry per subject): keyed subject hash, mode, request, time, secret id. Copied outside the database by lethe worker --ledger-dir; replayed after a restore by lethe restore-check.';
revoke all on pii.erasure_ledger from public;

-- Subjects whose tombstone a statement of this transaction marked erased, waiting for
-- the audit row that says how (mode, request). Rows live only inside that transaction.
create table pii.erasure_ledger_pending (
  xact xid8 not null,
  subject_hash bytea not null,
  erased_at timestamptz not null,
  primary key (xact, subject_hash)
);
comment on table pii.erasure_ledger_pending is 'Internal. Subjects erased by the current transaction, until its erase_subjects / erase_chunk audit row moves them into pii.erasure_ledger.';
revoke all on pii.erasure_ledger_pending from public;

-- Where the external copy stands (written by the worker): loud when it falls behind.
create table pii.ledger_export (
  singleton boolean primary key default true check (singleton),
  exported_seq bigint not null default 0,
  exported_at timestamptz,
  target text,
  last_error text,
  last_error_at timestamptz
);
insert into pii.ledger_export default values;
comment on table pii.ledger_export is 'Progress of the external ledger copy (lethe worker --ledger-dir): last entry written, last failure.';
revoke all on pii.ledger_export from public;

-- Audit rows join the audit chain (secret_id: which HMAC secret made entry_hash).
alter table pii.audit add column chain_seq bigint unique, add column prev_hash bytea, add column entry_hash bytea,
  add column secret_id text;

-- migrate:down
alter table pii.audit drop column chain_seq, drop column prev_hash, drop column entry_hash, drop column secret_id;
drop table pii.ledger_export;
drop table pii.erasure_ledger_pending;
drop table pii.erasure_ledger;
drop table pii.chain_heads;
