-- Repeatable code: the append-only audit trail (pii.audit) and its writer.

comment on table pii.audit is 'Append-only audit trail: who (session user, application), what, when, counts per table. No raw subject keys, no PII values.';

revoke all on pii.audit from public;
grant select on pii.audit to pii_auditor;

create or replace function pii_internal.audit_is_append_only() returns trigger
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  raise exception 'pii.audit is append-only: % is not allowed', tg_op
    using errcode = '42501', hint = 'Audit rows are evidence; they are never changed or removed.';
end
$$;
revoke execute on function pii_internal.audit_is_append_only() from public;
comment on function pii_internal.audit_is_append_only() is 'Internal. Trigger refusing UPDATE, DELETE and TRUNCATE on pii.audit.';

create or replace trigger audit_no_update_delete before update or delete on pii.audit
  for each row execute function pii_internal.audit_is_append_only();
create or replace trigger audit_no_truncate before truncate on pii.audit
  for each statement execute function pii_internal.audit_is_append_only();
-- Also under session_replication_role = replica (which silences ordinary triggers).
alter table pii.audit enable always trigger audit_no_update_delete;
alter table pii.audit enable always trigger audit_no_truncate;

create or replace function pii_internal.write_audit(action text, request_id uuid default null, details jsonb default '{}'::jsonb, subject_hash bytea default null)
returns void
language sql
set search_path = pg_catalog, pii, pg_temp
as $$
  insert into pii.audit (action, request_id, details, subject_hash)
  values (write_audit.action, write_audit.request_id, coalesce(write_audit.details, '{}'::jsonb), write_audit.subject_hash)
$$;
revoke execute on function pii_internal.write_audit(text, uuid, jsonb, bytea) from public;
comment on function pii_internal.write_audit(text, uuid, jsonb, bytea) is 'Internal. Appends one audit row; callers pass counts and hashes, never keys or values.';
