-- Lethe's internal tables leave the public contract's schema: no group role reads them
-- (a request's items are public through pii.request_items(uuid), a function). Indexes,
-- constraints, triggers, comments and rows move with each table; functions and views refer
-- to tables by oid, so they keep working until the code files are applied again.
-- (Issue 10's migration is 0011, already landed with the strategy catalogs: this number is
-- provisional, the merge renumbers it.)
alter table pii.secret set schema pii_internal;
alter table pii.tombstones set schema pii_internal;
alter table pii.request_items set schema pii_internal;
alter table pii.request_residuals set schema pii_internal;
