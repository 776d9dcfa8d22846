-- Repeatable code (docs/architecture.md): schema privileges, the install key's HMAC
-- (pii_internal.hmac, subject_hash). Functions are executable by PUBLIC by default (a
-- per-schema default cannot remove that), so every code file ends with an explicit revoke
-- and grants what each group needs.
comment on schema pii_internal is 'Lethe internals (engine, SQL builders, trigger functions): no group role has USAGE. The contract is schema pii.';
revoke all on schema pii_internal from public;

comment on schema pii is 'Lethe: GDPR erasure, PII masking and tokenization. See \df+ pii.*';
comment on schema masked is 'Lethe: one masked view per registered table, rebuilt by pii.apply_masking()';

revoke all on schema pii from public;
revoke all on schema masked from public;
grant usage on schema pii to pii_admin, pii_operator, pii_auditor, pii_dispatcher;
grant usage on schema masked to pii_masked_reader;
revoke all on pii_internal.secret from public;
comment on table pii_internal.secret is 'Per-install HMAC-SHA256 key (RFC 2104 padded form). Readable by the Lethe owner only. Losing it makes old hashes unmatchable.';
revoke all on pii_internal.pseudonym_key from public;
comment on table pii_internal.pseudonym_key is 'The key of pseudonyms only (RFC 2104 padded form), derived from the install key: bound into statements that run with a table owner''s rights, where the install key must never go.';
revoke all on pii.settings from public;
grant select on pii.settings to pii_admin, pii_operator, pii_auditor;
comment on table pii.settings is 'Install-wide settings: request due time, chunk size, key limits per erase_subjects call and per request, privacy by default for masked views, erasure_completed jobs';
revoke all on pii.not_pii_columns from public;
grant select on pii.not_pii_columns to pii_admin, pii_operator, pii_auditor;
comment on table pii.not_pii_columns is 'Columns of tables Lethe does not register, classified as not personal data by pii.mark_not_pii: pii.discover does not report them by name. They become pii.columns rules when the table is registered.';
comment on column pii.settings.erasure_completed_jobs is 'Queue a graphile-worker erasure_completed job per finished request (off: nothing would run them unless the application has a handler). Opt in: update pii.settings set erasure_completed_jobs = true;';

-- HMAC-SHA256 under the install key. Internal: callable only inside Lethe's own functions.
create or replace function pii_internal.hmac(message text) returns bytea
language sql stable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.sha256(s.outer_key || pg_catalog.sha256(s.inner_key || pg_catalog.convert_to(message, 'UTF8')))
  from pii_internal.secret s
$$;
revoke execute on function pii_internal.hmac(text) from public;
comment on function pii_internal.hmac(text) is 'Internal. HMAC-SHA256 of the message under the per-install key.';

-- The keyed hash that stands for a data subject once its key is gone: scope and key
-- joined by the unit separator (a key cannot forge another scope).
create or replace function pii_internal.subject_hash(scope text, subject_key text) returns bytea
language sql stable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.hmac(coalesce(scope, '') || pg_catalog.chr(31) || subject_key)
$$;
revoke execute on function pii_internal.subject_hash(text, text) from public;
comment on function pii_internal.subject_hash(text, text) is 'Internal. Keyed hash of a subject (scope, key): what requests, items, tombstones and audit keep instead of the key.';
