-- Keyset pages of a request's items (pii.request_items_page): the primary key
-- (request_id, subject_hash) pages all items; these page the unmatched and the failed ones
-- without reading past the others. Both stay small: subjects are matched when the request
-- is filed, and items fail rarely.
create index request_items_unmatched_idx on pii_internal.request_items (request_id, subject_hash) where not matched;
create index request_items_failed_idx on pii_internal.request_items (request_id, subject_hash) where status = 'failed';
