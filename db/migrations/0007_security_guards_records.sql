-- Issue 11, part B (state): the lock that orders direct erasures against guarded writes,
-- and residual locators that no longer hold a row's primary key (the subject key, on the
-- subject table) but its keyed hash.

-- No rows: only locked. Guards and request chunks take it ROW EXCLUSIVE (they never wait
-- for each other); pii.erase_subjects takes it SHARE ROW EXCLUSIVE, so it waits for
-- writers already in flight and writers arriving later wait for its tombstones to commit.
create table pii_internal.erasure_lock ();
revoke all on pii_internal.erasure_lock from public;
comment on table pii_internal.erasure_lock is 'Never holds rows: locked by guards (ROW EXCLUSIVE) and pii.erase_subjects (SHARE ROW EXCLUSIVE) so that no write slips between an erasure and its tombstones.';

alter table pii.request_residuals add column row_key_hash bytea;
-- HMAC-SHA256 spelled out: code (pii_internal.hmac) is applied after the migrations.
update pii.request_residuals r
   set row_key_hash = pg_catalog.sha256(s.outer_key || pg_catalog.sha256(s.inner_key || pg_catalog.convert_to('row' || pg_catalog.chr(31) || r.row_key::text, 'UTF8')))
  from pii.secret s
 where r.row_key is not null;
alter table pii.request_residuals drop column row_key;
comment on column pii.request_residuals.row_key_hash is 'Keyed hash of the row''s primary key (as jsonb text): finds the row again among the subject''s rows without keeping the key.';

-- Replaced by pii_internal.row_key_hash_sql (code files only create or replace).
drop function if exists pii_internal.row_key_sql(regclass);
