-- The PII registry (F1, F4, F21): which table holds the data subjects, which tables
-- belong to a subject (directly or through a parent), and what happens to each PII
-- column on erasure and in masked views. Rules are data; the engine reads them.
-- Columns are stored by attnum so that renaming a column keeps its rule.

create table pii.subject_table (
  singleton boolean primary key default true check (singleton),
  relid regclass not null unique,
  key_attnum smallint not null,
  scope_attnum smallint,
  key_is_pii boolean not null default false,
  registered_at timestamptz not null default pg_catalog.now()
);

create table pii.tables (
  relid regclass primary key,
  subject_attnum smallint,
  parent_relid regclass references pii.tables (relid),
  parent_fk_attnum smallint,
  parent_key_attnum smallint,
  scope_attnum smallint,
  on_erase text not null check (on_erase in ('anonymize', 'delete')),
  guard_mode text not null default 'scrub' check (guard_mode in ('scrub', 'reject', 'skip', 'off')),
  registered_at timestamptz not null default pg_catalog.now(),
  check (
    (subject_attnum is not null and parent_relid is null and parent_fk_attnum is null and parent_key_attnum is null)
    or (subject_attnum is null and parent_relid is not null and parent_fk_attnum is not null and parent_key_attnum is not null)
  )
);
create index tables_parent_relid_idx on pii.tables (parent_relid);

create table pii.columns (
  relid regclass not null references pii.tables (relid) on delete cascade,
  attnum smallint not null,
  erase text not null,
  mask text not null default 'hide',
  category text not null default 'pii',
  registered_at timestamptz not null default pg_catalog.now(),
  primary key (relid, attnum)
);
