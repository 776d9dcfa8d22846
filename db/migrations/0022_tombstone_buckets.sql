-- A short keyed bucket on each tombstone (issue 13): 24 bits of a keyed hash of the
-- subject's (scope, key), seeded from the install key, written with the tombstone by the
-- calls that know the key (requests, erase_subjects, the identifier guards). A guard over
-- many new rows computes the bucket of each distinct key (cheap) and the HMAC (two
-- SHA-256) only of the keys whose bucket some tombstone has. Tombstones written without a
-- key (before this version, restored from the ledger) have none: while any is left, guards
-- hash every key as before (the partial index answers that at once).
alter table pii_internal.tombstones add column bucket integer;
create index tombstones_unbucketed_idx on pii_internal.tombstones (subject_hash) where bucket is null;

-- Signatures that gained the buckets (re-created by db/code).
drop function if exists pii_internal.flag_subjects(bytea[], text[], uuid, text);
drop function if exists pii_internal.mark_erased(bytea[], text[], uuid, pg_snapshot, text);
drop function if exists pii_internal.identifier_hits(regclass, regclass, text, text[], text[], text[], boolean[]);
