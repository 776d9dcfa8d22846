-- State of retention policies, notifications and legal holds (F16, F17, F22, F29).
-- Functions, views and grants are in db/code/95_retention.sql.

-- A policy is its versions: every change is a new version, which must be approved
-- before enforcement runs it. The query text is the policy author's (no subject values
-- belong in it: it selects subjects by their activity, not by their identity).
create table pii.retention_policy_versions (
  policy_name text not null check (policy_name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  version integer not null check (version >= 1),
  subject_query text not null,
  kind text,
  key_type regtype not null,
  max_subjects integer not null check (max_subjects >= 1),
  mode text not null check (mode in ('erase', 'delete')),
  schedule text not null check (schedule in ('hourly', 'daily', 'weekly', 'monthly')),
  enabled boolean not null,
  defined_by name not null default session_user,
  defined_at timestamptz not null default pg_catalog.now(),
  approved_by name,
  approved_at timestamptz,
  primary key (policy_name, version)
);
comment on table pii.retention_policy_versions is 'Retention policies, one row per version; the highest version is the policy. Enforcement runs only an approved current version.';

-- Every enforcement run, allowed or not. period_start is the start of the schedule's
-- period (UTC) the run belongs to: one request per policy and period.
create table pii.retention_runs (
  id bigint generated always as identity primary key,
  policy_name text not null,
  version integer not null,
  period_start timestamptz not null,
  at timestamptz not null default pg_catalog.clock_timestamp(),
  run_by name not null default session_user,
  candidates bigint,
  held bigint,
  outcome text not null check (outcome in ('requested', 'already_requested', 'nothing_to_erase', 'blocked', 'unapproved', 'refused')),
  request_id uuid
);
create index retention_runs_policy_period_idx on pii.retention_runs (policy_name, period_start);
comment on table pii.retention_runs is 'Every retention enforcement run: version, candidates, held subjects left out, outcome, request filed.';

-- Things a person must act on (a blocked retention run, a hold about to expire). Each
-- row is also sent as NOTIFY pii_notification. Ids and counts only.
create table pii.notifications (
  id bigint generated always as identity primary key,
  at timestamptz not null default pg_catalog.clock_timestamp(),
  kind text not null check (kind in ('retention_blocked', 'hold_expiring', 'hold_expired')),
  policy_name text,
  hold_id uuid,
  details jsonb not null default '{}'::jsonb
);
create index notifications_at_idx on pii.notifications (at);
comment on table pii.notifications is 'Notifications for the privacy team (also sent as NOTIFY pii_notification): blocked retention runs, expiring and expired legal holds.';

-- Legal holds: subjects (keyed hashes only) whose rows in the held tables (all
-- registered tables when tables is NULL) must be kept, minimised, until held_until.
create table pii.legal_holds (
  id uuid primary key default pg_catalog.gen_random_uuid(),
  reason text not null,
  held_until date not null,
  tables regclass[],
  kind text,
  subjects integer not null,
  placed_by name not null default session_user,
  placed_at timestamptz not null default pg_catalog.now(),
  released_by name,
  released_at timestamptz,
  -- Set by the expiry job once the hold has ended (expired or released), with the request
  -- it filed to erase the rows the hold had kept.
  ended_at timestamptz,
  expiry_request_id uuid
);
comment on table pii.legal_holds is 'Legal holds (F29): reason, end date, held tables (NULL: all registered), who placed and released them.';

create table pii.hold_subjects (
  subject_hash bytea not null,
  hold_id uuid not null references pii.legal_holds (id),
  primary key (subject_hash, hold_id)
);
create index hold_subjects_hold_id_idx on pii.hold_subjects (hold_id);
comment on table pii.hold_subjects is 'The subjects of each hold, as keyed hashes.';

-- Which expiry notices (30, 7, 1 days before) a hold has had, so each is sent once.
create table pii.hold_notices (
  hold_id uuid not null references pii.legal_holds (id),
  days_before integer not null,
  sent_at timestamptz not null default pg_catalog.now(),
  primary key (hold_id, days_before)
);

-- The latest end of the legal holds that kept some of a request's rows (minimised).
alter table pii.requests add column held_until date;

revoke all on pii.retention_policy_versions, pii.retention_runs, pii.notifications, pii.legal_holds, pii.hold_subjects,
  pii.hold_notices from public;

-- erase_resolved gains held_until (an OUT parameter: a new return type).
drop function if exists pii_internal.erase_resolved(text[], text[], text);

-- The deputies' statements bind the held pairs too ($6-$8), and guard_hits takes the table
-- (a minimised row passes where a hold keeps it): new argument lists.
drop function if exists pii_internal.as_owner(regclass, text, boolean, text[], text[], text[]);
drop function if exists pii_internal.guard_hits(text[], text[]);
