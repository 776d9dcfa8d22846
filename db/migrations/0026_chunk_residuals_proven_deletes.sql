-- Verification per chunk leaves out the tables whose DELETE is proven to have left no row
-- (issue 13, db/code/70_verification.sql pii_internal.proven_deleted): chunk_residuals and
-- registered_residuals take the list of those tables. The code defines the new signatures;
-- the old ones go.
drop function if exists pii_internal.chunk_residuals(uuid, text, text, text[], text[], bytea[], text[]);
drop function if exists pii_internal.registered_residuals(text, text[], text[], bytea[], text[], text);
