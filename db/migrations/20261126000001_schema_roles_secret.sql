-- migrate:up
-- Lethe's home: schema pii (registry, engine, audit) and schema masked (staff views).
-- Needs nothing beyond core PostgreSQL 14+: hashing uses pg_catalog.sha256, so it
-- installs on any managed Postgres.

create schema if not exists pii;
comment on schema pii is 'Lethe: GDPR erasure, PII masking and tokenization. See \df+ pii.*';
create schema if not exists masked;
comment on schema masked is 'Lethe: one masked view per registered table, rebuilt by pii.apply_masking()';

-- Group roles (NOLOGIN). Roles are cluster-wide, so another database may have made them.
do $$
declare
  r text;
begin
  foreach r in array array['pii_admin', 'pii_operator', 'pii_masked_reader', 'pii_auditor', 'pii_dispatcher'] loop
    if not exists (select from pg_catalog.pg_roles where rolname = r) then
      execute pg_catalog.format('create role %I nologin', r);
    end if;
  end loop;
end
$$;
grant pii_operator, pii_auditor to pii_admin;

revoke all on schema pii from public;
revoke all on schema masked from public;
grant usage on schema pii to pii_admin, pii_operator, pii_auditor, pii_dispatcher;
grant usage on schema masked to pii_masked_reader;

-- Functions are executable by PUBLIC by default (a per-schema default cannot remove
-- that), so every migration ends with an explicit revoke and grants what each group needs.

-- The per-install HMAC key, stored as the two padded keys of RFC 2104
-- (key xor ipad, key xor opad) so that HMAC-SHA256 is two pg_catalog.sha256 calls.
-- Only the owner of the pii schema (Lethe's SECURITY DEFINER functions) can read it.
create table pii.secret (
  singleton boolean primary key default true check (singleton),
  inner_key bytea not null check (pg_catalog.length(inner_key) = 64),
  outer_key bytea not null check (pg_catalog.length(outer_key) = 64),
  created_at timestamptz not null default pg_catalog.now()
);
revoke all on pii.secret from public;
comment on table pii.secret is 'Per-install HMAC-SHA256 key (RFC 2104 padded form). Readable by the Lethe owner only. Losing it makes old hashes unmatchable.';

do $$
declare
  k bytea;
  ik bytea;
  ok bytea;
begin
  -- 64 bytes from four v4 UUIDs: 488 random bits from the server's CSPRNG.
  k := pg_catalog.decode(pg_catalog.replace(
         pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text ||
         pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex');
  ik := k;
  ok := k;
  for i in 0..63 loop
    ik := pg_catalog.set_byte(ik, i, pg_catalog.get_byte(k, i) # 54);  -- 0x36
    ok := pg_catalog.set_byte(ok, i, pg_catalog.get_byte(k, i) # 92);  -- 0x5c
  end loop;
  insert into pii.secret (inner_key, outer_key) values (ik, ok);
end
$$;

-- Install-wide settings (non-secret).
create table pii.settings (
  singleton boolean primary key default true check (singleton),
  default_due interval not null default interval '24 hours',
  chunk_size integer not null default 5000 check (chunk_size between 1 and 100000),
  max_keys_per_call integer not null default 100000 check (max_keys_per_call between 1 and 10000000),
  max_keys_per_request integer not null default 1000000 check (max_keys_per_request between 1 and 100000000),
  privacy_by_default boolean not null default true
);
insert into pii.settings default values;
revoke all on pii.settings from public;
grant select on pii.settings to pii_admin, pii_operator, pii_auditor;
comment on table pii.settings is 'Install-wide settings: request due time, chunk size, key limits per erase_subjects call and per request, privacy by default for masked views';

-- HMAC-SHA256 under the install key. Internal: callable only inside Lethe's own functions.
create function pii.hmac(message text) returns bytea
language sql stable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.sha256(s.outer_key || pg_catalog.sha256(s.inner_key || pg_catalog.convert_to(message, 'UTF8')))
  from pii.secret s
$$;
revoke execute on function pii.hmac(text) from public;
comment on function pii.hmac(text) is 'Internal. HMAC-SHA256 of the message under the per-install key.';

-- The keyed hash that stands for a data subject once its key is gone: scope and key
-- joined by the unit separator (a key cannot forge another scope).
create function pii.subject_hash(scope text, subject_key text) returns bytea
language sql stable parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii.hmac(coalesce(scope, '') || pg_catalog.chr(31) || subject_key)
$$;
revoke execute on function pii.subject_hash(text, text) from public;
comment on function pii.subject_hash(text, text) is 'Internal. Keyed hash of a subject (scope, key): what requests, items, tombstones and audit keep instead of the key.';

-- migrate:down
drop schema masked cascade;
drop schema pii cascade;
