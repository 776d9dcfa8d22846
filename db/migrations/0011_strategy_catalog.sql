-- The strategy catalogs (db/code/47_strategies.sql) hold the email mask's template: its
-- old builder goes. Later internal-table moves of issue 10 follow in this file.
drop function if exists pii_internal.mask_email_sql(text);
