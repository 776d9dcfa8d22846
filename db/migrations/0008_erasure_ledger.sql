-- State for restore-safe erasure (F30, F37): the erasure ledger, the hash chains over it
-- and over pii.audit, and where the worker's external copy of the ledger stands.
-- Functions, triggers, grants and comments: db/code/85_ledger.sql.

-- One head per chain: the last link's sequence number and entry hash. Appends lock the
-- head row, so entries of one chain are numbered and linked one transaction at a time.
create table pii_internal.chain_heads (
  chain text primary key check (chain in ('audit', 'erasure_ledger')),
  seq bigint not null default 0,
  last_hash bytea
);

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

-- Subjects whose tombstone a statement of this transaction marked erased, waiting for
-- the audit row that says how (mode, request). Rows live only inside that transaction, so
-- the table is unlogged (no WAL) and has no index (it holds only in-flight transactions' rows).
create unlogged table pii_internal.erasure_ledger_pending (
  xact xid8 not null,
  subject_hash bytea not null,
  erased_at timestamptz not null
);

-- Where the external copy stands (written by the worker): loud when it falls behind.
create table pii_internal.ledger_export (
  singleton boolean primary key default true check (singleton),
  exported_seq bigint not null default 0,
  exported_at timestamptz,
  target text,
  last_error text,
  last_error_at timestamptz
);
insert into pii_internal.ledger_export default values;
insert into pii_internal.chain_heads (chain) values ('erasure_ledger');

-- Audit rows join the audit chain (secret_id: which HMAC secret made entry_hash).
alter table pii.audit add column chain_seq bigint unique, add column prev_hash bytea, add column entry_hash bytea,
  add column secret_id text;
