-- Lethe's home: schema pii (the public contract: registry, requests, audit), schema
-- pii_internal (the engine; no group role has USAGE) and schema masked (staff views).
-- Needs nothing beyond core PostgreSQL 14+: hashing uses pg_catalog.sha256, so it
-- installs on any managed Postgres.

create schema if not exists pii;
create schema if not exists pii_internal;
create schema if not exists masked;

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

-- The per-install HMAC key, stored as the two padded keys of RFC 2104
-- (key xor ipad, key xor opad) so that HMAC-SHA256 is two pg_catalog.sha256 calls.
-- Only the owner of the pii schema (Lethe's SECURITY DEFINER functions) can read it.
create table pii.secret (
  singleton boolean primary key default true check (singleton),
  inner_key bytea not null check (pg_catalog.length(inner_key) = 64),
  outer_key bytea not null check (pg_catalog.length(outer_key) = 64),
  created_at timestamptz not null default pg_catalog.now()
);

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
