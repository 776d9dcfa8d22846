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

-- Tombstones of citext subject keys made before keys were canonicalised (0.1.0) hashed the
-- key in the case it was given; guards and was_erased now hash lower(key), what citext's =
-- compares, and would let such a subject back in. For every key still in the subject table
-- (anonymize erasures keep the row) whose as-stored hash is tombstoned, add the tombstone of
-- its canonical hash. Reads the subject table as the installer: citext's cast to text is
-- binary (no function runs) and only unscoped tables or built-in scope types are read.
-- Keys whose row is gone (deleted) cannot be found again: erase them again.
do $$
declare
  subj record;
  install regclass := coalesce(pg_catalog.to_regclass('pii_internal.secret'), pg_catalog.to_regclass('pii.secret'));
  tombstones regclass := coalesce(pg_catalog.to_regclass('pii_internal.tombstones'), pg_catalog.to_regclass('pii.tombstones'));
  mac text := 'pg_catalog.sha256(s.outer_key operator(pg_catalog.||) pg_catalog.sha256(s.inner_key operator(pg_catalog.||) pg_catalog.convert_to(%s, ''UTF8'')))';
  scope_sql text;
begin
  select st.relid, k.attname as key_name, sc.attname as scope_name, sc_t.typnamespace as scope_ns
    into subj
  from pii.subject_table st
  join pg_catalog.pg_attribute k on k.attrelid = st.relid and k.attnum = st.key_attnum
  join pg_catalog.pg_type kt on kt.oid = k.atttypid
  left join pg_catalog.pg_attribute sc on sc.attrelid = st.relid and sc.attnum = st.scope_attnum
  left join pg_catalog.pg_type sc_t on sc_t.oid = sc.atttypid
  where kt.typname = 'citext' or (kt.typtype = 'd' and exists (select from pg_catalog.pg_type b where b.oid = kt.typbasetype and b.typname = 'citext'));
  if subj.relid is null or (subj.scope_name is not null and subj.scope_ns <> 'pg_catalog'::regnamespace) then
    return;
  end if;
  scope_sql := case when subj.scope_name is null then '''''' else pg_catalog.format('coalesce(t.%I::text, '''')', subj.scope_name) end;
  execute pg_catalog.format(
    $q$insert into %1$s (subject_hash, pseudonym, request_id, flagged_at, erased_at, erased_xact)
       select distinct on (n.h) n.h, tb.pseudonym, tb.request_id, tb.flagged_at, tb.erased_at, tb.erased_xact
       from (select %2$s as old_h, %3$s as h
             from (select %4$s as sc, t.%5$I::text as k from %6$s as t) t, %7$s s) n
       join %1$s tb on tb.subject_hash operator(pg_catalog.=) n.old_h
       where n.h operator(pg_catalog.<>) n.old_h
       on conflict (subject_hash) do nothing$q$,
    tombstones,
    pg_catalog.format(mac, 't.sc operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) t.k'),
    pg_catalog.format(mac, 't.sc operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) pg_catalog.lower(t.k)'),
    scope_sql, subj.key_name, subj.relid::regclass, install);
end
$$;
-- pii_internal.residual_checks_sql returns the checks with their columns and details (the
-- deputy evaluates only the predicates).
drop function if exists pii_internal.residual_checks_sql(regclass, text);
