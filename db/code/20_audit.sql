-- Repeatable code: the append-only audit trail (pii.audit) and its writer.

comment on table pii.audit is 'Append-only audit trail: who (session user, application), what, when, counts per table. No raw subject keys, no PII values.';

revoke all on pii.audit from public;
grant select on pii.audit to pii_auditor;

create or replace function pii_internal.audit_is_append_only() returns trigger
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  raise exception '%.% is append-only: % is not allowed', tg_table_schema, tg_table_name, tg_op
    using errcode = '42501', hint = 'Audit rows and erasure ledger entries are evidence; they are never changed or removed.';
end
$$;
revoke execute on function pii_internal.audit_is_append_only() from public;
comment on function pii_internal.audit_is_append_only() is 'Internal. Trigger refusing UPDATE, DELETE and TRUNCATE on pii.audit and pii.erasure_ledger.';

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

-- Errors raised while Lethe runs statements on application tables can quote anything:
-- an application trigger's RAISE naming a customer and their email, a constraint's
-- DETAIL. Lethe's own RAISEs never quote values and pass unchanged (raise;); anything
-- else is raised again with its SQLSTATE, the objects it names and a keyed hash of its
-- text (to tell errors apart), never the text: requests, items, the audit trail, worker
-- logs and graphile-worker's last_error only ever see this. Call from an exception
-- handler with the error's stacked diagnostics.
create or replace function pii_internal.raised_by_lethe(context text) returns boolean
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  -- Deputies live in pii_internal but are their table owner's (45_deputies): not Lethe's.
  select x.line operator(pg_catalog.~) '^PL/pgSQL function (pii|pii_internal)\.[^(]+\(.*\) line [0-9]+ at RAISE$'
         and not x.line operator(pg_catalog.~) '^PL/pgSQL function pii_internal\.deputy_'
  from (select pg_catalog.split_part(coalesce(context, ''), pg_catalog.chr(10), 1) as line) x
$$;
comment on function pii_internal.raised_by_lethe(text) is 'Internal. Whether an error (by its PG_EXCEPTION_CONTEXT) was raised by one of Lethe''s own RAISE statements.';

-- A database error's text can quote personal data (an application's RAISE, a constraint's
-- DETAIL, a value in a DDL error): Lethe keeps a keyed hash of it, enough to tell two errors
-- apart and to match one a DBA reproduces, never the text.
create or replace function pii_internal.message_hmac(message text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.left(pg_catalog.encode(pii_internal.hmac('error' || pg_catalog.chr(31) || coalesce(message, '')), 'hex'), 16)
$$;
comment on function pii_internal.message_hmac(text) is 'Internal. 16 hex digits of the keyed hash of an error message: what Lethe keeps instead of its text.';

-- An error as Lethe may show it in warnings and its own records: a message of Lethe's own
-- RAISE as it is (they never quote values), any other as SQLSTATE and message hash.
create or replace function pii_internal.safe_error_text(state text, message text, context text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when pii_internal.raised_by_lethe(context) then message
              else pg_catalog.format('SQLSTATE %s (message hmac %s)', state, pii_internal.message_hmac(message)) end
$$;
comment on function pii_internal.safe_error_text(text, text, text) is 'Internal. An error''s text as Lethe may show it: its own RAISE''s message, otherwise SQLSTATE and the keyed hash of the message.';

create or replace function pii_internal.raise_without_text(what text, state text, message text, schema_name text, table_name text,
                                                           constraint_name text, column_name text)
returns void
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  raise exception using message = pg_catalog.format('%s failed: SQLSTATE %s%s%s%s (message hmac %s)', what, state,
    case when table_name <> '' then pg_catalog.format(' on %s.%s', schema_name, table_name) else '' end,
    case when constraint_name <> '' then pg_catalog.format(', constraint %s', constraint_name) else '' end,
    case when column_name <> '' then pg_catalog.format(', column %s', column_name) else '' end,
    pii_internal.message_hmac(message)),
          errcode = state,
          hint = 'Raised by code outside Lethe (a trigger, a check, a constraint of the application): Lethe keeps no database error''s text, since it can quote personal data.';
end
$$;
comment on function pii_internal.raise_without_text(text, text, text, text, text, text, text) is 'Internal. Raises an application error again as SQLSTATE, object names and a keyed hash of its text.';
