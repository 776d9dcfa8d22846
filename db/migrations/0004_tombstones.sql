create table pii.tombstones (
  subject_hash bytea primary key,
  pseudonym text,
  request_id uuid,
  flagged_at timestamptz not null default pg_catalog.now(),
  erased_at timestamptz,
  -- The transaction that erased the subject: a request erases a subject again only if
  -- that erasure was already committed when the request was filed (data may have come
  -- back since), never when it ran concurrently.
  erased_xact xid8
);
create index tombstones_pseudonym_idx on pii.tombstones (pseudonym) where pseudonym is not null;
