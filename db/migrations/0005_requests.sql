-- Erasure requests (F7, F9, F10, F26, F27): recorded and queued in the caller's
-- transaction, processed in chunks by graphile-worker jobs, followed by status,
-- verified at the end. Raw keys live only in pending items; a processed item keeps
-- its keyed hash.

create table pii.requests (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  request_key_hash bytea unique,
  source text not null,
  mode text not null check (mode in ('erase', 'delete')),
  status text not null default 'queued' check (status in ('queued', 'running', 'done', 'failed')),
  total bigint not null default 0,
  duplicates bigint not null default 0,
  matched bigint not null default 0,
  erased bigint not null default 0,
  failed bigint not null default 0,
  rows_affected jsonb not null default '{}'::jsonb,
  requested_by name not null default session_user,
  requested_at timestamptz not null default pg_catalog.now(),
  -- Which transactions had committed when the request was filed (see tombstones.erased_xact).
  filed_snapshot pg_snapshot not null default pg_catalog.pg_current_snapshot(),
  started_at timestamptz,
  finished_at timestamptz,
  due_at timestamptz not null,
  verified_at timestamptz,
  residual_count integer,
  error text
);
create index requests_open_idx on pii.requests (due_at) where status in ('queued', 'running');

-- Items and residuals are written only by Lethe's functions, in the transaction that
-- creates or processes their request; no foreign key, which would cost a check per item.
create table pii.request_items (
  request_id uuid not null,
  subject_hash bytea not null,
  subject_key text,
  scope text,
  pseudonym text,
  source_row bigint,
  matched boolean not null default false,
  status text not null default 'pending' check (status in ('pending', 'done', 'failed')),
  erased_by uuid,
  error text,
  processed_at timestamptz,
  primary key (request_id, subject_hash),
  -- No raw key once the subject is erased.
  check (status <> 'done' or (subject_key is null and scope is null))
);
create index request_items_pending_idx on pii.request_items (request_id, subject_hash) where status = 'pending';

-- Traces found at erasure time that only the raw identifiers could reveal (an email in
-- an unregistered text column). The row (primary key) and a keyed hash of the value are
-- kept, so pii.verify_erasure reports a trace only while that value is still there.
create table pii.request_residuals (
  request_id uuid not null,
  relid regclass not null,
  table_name text not null,
  column_name text not null,
  subject_hash bytea not null,
  row_key jsonb,
  value_hash bytea not null,
  detail text not null,
  found_at timestamptz not null default pg_catalog.now()
);
create index request_residuals_request_id_idx on pii.request_residuals (request_id);

-- CSV staging: the importer COPYs rows here, then pii.request_erasure_from_import turns
-- them into one request and deletes them in the same transaction.
create unlogged table pii.import_rows (
  import_id uuid not null,
  row_number bigint not null,
  subject_key text not null,
  scope text
);
