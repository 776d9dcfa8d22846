-- Subject kinds in the vault and in retention (issue 12 on issues 14 and 15): pii.tokenize
-- and pii.tokenize_many take the subjects' kind (subject_kind, last), pii.subject_query_keys
-- the kind whose key type a query must return, and the dry-run counts the kind whose tables
-- they count. The functions are re-created by db/code/93_vault.sql and 95_retention.sql.
drop function if exists pii.tokenize(text, text, text, text);
drop function if exists pii.tokenize_many(text[], text[], text[], text[]);
drop function if exists pii.subject_query_keys(text);
drop function if exists pii_internal.rows_to_change(text[], text[], text);
