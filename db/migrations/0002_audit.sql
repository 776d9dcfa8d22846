-- Append-only audit trail (F12, F19). It records who, what, when and counts; never a
-- subject key or a PII value (subjects appear as keyed hashes only).

create table pii.audit (
  id bigint generated always as identity primary key,
  at timestamptz not null default pg_catalog.clock_timestamp(),
  actor name not null default session_user,
  application text not null default pg_catalog.current_setting('application_name'),
  action text not null,
  request_id uuid,
  subject_hash bytea,
  details jsonb not null default '{}'::jsonb
);
create index audit_request_id_idx on pii.audit (request_id) where request_id is not null;
create index audit_at_idx on pii.audit (at);
