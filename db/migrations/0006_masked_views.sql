-- Masked views for staff (F13, F14): schema masked holds one view per registered table,
-- same name, same columns in the same order, same types where the mask allows, so SQL
-- clients, BI tools and joins keep working. Registered columns are masked by their mask
-- strategy; other columns are hidden (NULL) while privacy by default is on, until a DBA
-- classifies them (pii.register_column, or pii.mark_not_pii for ids, totals, dates).
--
-- Design notes
-- * Masks are inlined into the view as expressions over pg_catalog built-ins, not calls
--   to pii.mask_*: a view's query is bound (to OIDs) when it is created, under the pinned
--   search_path of the function that creates it, so no search_path or operator shadowing
--   at read time can change it; readers need EXECUTE on nothing of Lethe's; and an
--   inlined expression costs a few C calls per value where a SQL function with its own
--   search_path (never inlined) costs a function-executor round trip.
-- * Views are plain, not security_barrier: they filter no rows, so a reader's predicate
--   can only ever see the masked expression (a function in the reader's WHERE receives
--   masked values whatever the plan). Being flattenable keeps what staff need: the
--   reader's filter runs in the base table scan before any mask is computed, lookups by
--   key use the base table's index, and joins between masked views plan like joins
--   between tables. (A view that filtered rows would need security_barrier.)
-- * The hash mask is HMAC-SHA256 under the install key, domain-separated (message prefix
--   0xFF, a byte no UTF-8 text holds, so it never collides with subject hashes or
--   pseudonyms). The view reads the key with its owner's rights from pii.secret; readers
--   cannot call pii.mask_hash, so they cannot hash guesses (no oracle).
-- * Views are rebuilt only when their generated definition changes (pii.masked_views
--   keeps the last one), by registry triggers and, where the migrating role may create
--   them, event triggers on DDL.

create table pii.masked_views (
  relid regclass primary key,
  view_name name not null unique,
  definition text not null,
  saved_acl aclitem[],
  built_at timestamptz not null default pg_catalog.now()
);
