-- The pseudonym key (issue 11): statements that run with a table owner's rights (the
-- deputies, db/code/45_deputies.sql) compute and test pseudonyms, so they need a key; the
-- owner's code runs inside those statements, so it must not be the install key (which
-- makes every subject hash, audit entry and vault token). This key is derived from the
-- install key (one secret to back up) and is good for pseudonyms only: HMAC-SHA256 under
-- K' = HMAC(install key, 'lethe pseudonym key'), stored in the same RFC 2104 padded form.
-- Pseudonyms change with it: values pseudonymised before are pseudonymised again when
-- next touched (erasure, guard scrub).
create table pii_internal.pseudonym_key (
  singleton boolean primary key default true check (singleton),
  inner_key bytea not null check (pg_catalog.length(inner_key) = 64),
  outer_key bytea not null check (pg_catalog.length(outer_key) = 64)
);

do $$
declare
  install regclass := coalesce(pg_catalog.to_regclass('pii_internal.secret'), pg_catalog.to_regclass('pii.secret'));
  k bytea;
  ik bytea;
  ok bytea;
begin
  execute pg_catalog.format(
    $q$select pg_catalog.sha256(s.outer_key || pg_catalog.sha256(s.inner_key || pg_catalog.convert_to('lethe pseudonym key', 'UTF8'))) from %s s$q$,
    install) into k;
  k := k || pg_catalog.decode(pg_catalog.repeat('00', 32), 'hex');
  ik := k;
  ok := k;
  for i in 0..63 loop
    ik := pg_catalog.set_byte(ik, i, pg_catalog.get_byte(k, i) # 54);  -- 0x36
    ok := pg_catalog.set_byte(ok, i, pg_catalog.get_byte(k, i) # 92);  -- 0x5c
  end loop;
  insert into pii_internal.pseudonym_key (inner_key, outer_key) values (ik, ok);
end
$$;

-- Verification hashes a row's key in Lethe's context now (a deputy reads it):
-- pii_internal.row_key_hash_sql takes the row key's SQL text instead of the table.
drop function if exists pii_internal.row_key_hash_sql(regclass);
