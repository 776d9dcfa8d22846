-- Classification of columns of tables Lethe does not register, and the opt-in for
-- erasure_completed jobs (issue 12). Functions and grants: db/code/90_masking.sql,
-- db/code/92_discovery.sql, db/code/80_requests.sql.

-- Columns of unregistered tables classified as not personal data (pii.mark_not_pii):
-- discovery's false positives (category.name), dismissed so that pii.discover stops
-- reporting them. When the table is registered the rows become pii.columns rules
-- (keep, clear, not_pii). By attnum, as pii.columns: a rename keeps the classification.
create table pii.not_pii_columns (
  relid regclass not null,
  attnum smallint not null,
  marked_by name not null default session_user,
  marked_at timestamptz not null default pg_catalog.now(),
  primary key (relid, attnum)
);

-- erasure_completed graphile-worker jobs pile up unless some worker handles them: queued
-- only when the application opted in (or runWorker was given a handler, which opts in).
alter table pii.settings add column erasure_completed_jobs boolean not null default false;
