-- Subject kinds and identifiers that outlive the row (issue 12). Functions, grants and
-- comments: db/code/30_registry.sql, 40_tombstones.sql, 50_erasure.sql, 60_guards.sql.
--
-- Several subject tables per install, each a named kind (customer, staff). Every
-- registered table belongs to one kind (its subject table's, through its parents). A
-- subject's keyed hash is kind-specific: the first kind an install registers hashes as
-- before (hash_prefix ''), so every hash already in tombstones, requests, audit and the
-- ledger stays valid; a later kind's hashes are prefixed with its name, so staff 42 and
-- customer 42 never share a tombstone.

-- Existing rows get the install's one kind (the subject table's name) as a column default,
-- dropped right after: no row is updated, so no trigger of the code still installed fires
-- (it may be an older release's) and a million tombstones are not rewritten.
do $$
declare
  existing_kind text := (select c.relname::text from pii.subject_table s join pg_catalog.pg_class c on c.oid = s.relid);
  t text;
begin
  foreach t in array array['pii.subject_table', 'pii.tables', 'pii_internal.tombstones', 'pii.requests'] loop
    if existing_kind is null then
      execute pg_catalog.format('alter table %s add column kind text', t);
    else
      execute pg_catalog.format('alter table %s add column kind text default %L', t, existing_kind);
      execute pg_catalog.format('alter table %s alter column kind drop default', t);
    end if;
  end loop;
end
$$;
alter table pii.subject_table alter column kind set not null;
alter table pii.subject_table add constraint subject_table_kind_check check (kind <> '' and pg_catalog.length(kind) <= 63);
alter table pii.subject_table add column hash_prefix text not null default '';
alter table pii.subject_table drop constraint subject_table_pkey;
alter table pii.subject_table drop column singleton;
alter table pii.subject_table add primary key (kind);
alter table pii.tables alter column kind set not null;
alter table pii.tables add constraint tables_kind_fkey foreign key (kind) references pii.subject_table (kind);
alter table pii.import_rows add column kind text;

-- A request's erased count is subjects erased; it used to count every processed key, so
-- "erased 302" could be 300 subjects and 2 keys that matched none. processed keeps the
-- count of processed items (progress); erased is recomputed from the items.
alter table pii.requests add column processed bigint not null default 0;
update pii.requests r set processed = r.erased,
  erased = (select pg_catalog.count(*) from pii_internal.request_items i where i.request_id = r.id and i.status = 'done' and i.matched);

-- Identifier columns: values that name a person whatever their row's key (email, phone,
-- username, national id, device id). identifier names what the value is, so that the
-- same email in two tables of one kind is one identifier; normaliser is how a value is
-- made canonical before it is hashed (email: lower(trim()), phone: digits only).
create table pii.identifiers (
  relid regclass not null references pii.tables (relid) on delete cascade,
  attnum smallint not null,
  identifier text not null check (identifier ~ '^[a-z][a-z0-9_]{0,62}$'),
  normaliser text not null check (normaliser in ('email', 'phone', 'lower_trim', 'trim', 'exact')),
  registered_at timestamptz not null default pg_catalog.now(),
  primary key (relid, attnum)
);

-- Identifier tombstones: the keyed hashes (never the values) of erased subjects'
-- identifiers. The hash covers kind, identifier and normalised value, so guards probe
-- (kind, identifier_hash) by the primary key; allow_return by key finds a subject's
-- rows by subject_hash. identifier says which identifier it was ('restored' when
-- re-applied from the erasure ledger, which keeps hashes only).
create table pii_internal.identifier_tombstones (
  kind text not null,
  identifier_hash bytea not null,
  subject_hash bytea not null,
  identifier text not null,
  erased_at timestamptz not null default pg_catalog.now(),
  primary key (kind, identifier_hash, subject_hash)
);
create index identifier_tombstones_subject_hash_idx on pii_internal.identifier_tombstones (subject_hash);

-- Functions whose argument lists gained a kind (db/code re-creates them; docs/architecture.md,
-- "Objects that disappear").
drop function if exists pii.register_subject_table(regclass, name, name, boolean);
drop function if exists pii.unregister_subject_table();
drop function if exists pii.was_erased(text, text);
drop function if exists pii.allow_return(text, text);
drop function if exists pii.erase_subjects(text[], text[], text);
drop function if exists pii.request_erasure(text[], text, text, text[], text, timestamptz);
drop function if exists pii.request_erasure_from_import(uuid, text, text, text, timestamptz);
drop function if exists pii_internal.resolve_subjects(text[], text[], integer, bigint[]);
drop function if exists pii_internal.flag_subjects(bytea[], text[], uuid);
drop function if exists pii_internal.matched_subjects(text[], text[]);
drop function if exists pii_internal.erase_resolved(text[], text[], text);
drop function if exists pii_internal.capture_identifiers(text[], text[]);
drop function if exists pii_internal.subjects_by_hash(bytea[]);
drop function if exists pii_internal.create_request(text[], text[], bigint[], text, text, text, timestamptz);
drop function if exists pii_internal.retention_candidates(text[], text[]);
drop function if exists pii_internal.held_pairs(text[], text[]);
drop function if exists pii_internal.run_erase_plan(text, text[], text[], boolean, text[], oid[], text[]);
drop function if exists pii_internal.find_subjects_again(bytea[], text[]);
drop function if exists pii_internal.registered_residuals(text, text[], text[], bytea[], text[]);
