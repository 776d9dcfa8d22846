-- pii.request_status returns the request's subject kind (issue 12): its result type
-- changed, which create or replace cannot do (db/code/80_requests.sql re-creates it).
drop function if exists pii.request_status(uuid);
