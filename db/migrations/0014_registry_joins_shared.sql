-- Registration follows real foreign keys, and rows reached through them may be shared
-- (issue 12). Functions, views and grants are in db/code/30_registry.sql and 50_erasure.sql.

-- link_fk: the foreign key constraint (on this table or on its parent/subject table) that
-- backs the join to the parent; NULL for a join the DBA registered as unenforced_join.
-- link_referenced: the parent's rows reference this table's rows (customer.address_id ->
-- address): such a row may also belong to others (other foreign keys into it, other
-- subjects), and shared decides what erasure does to a shared row (keep: leave it intact).
alter table pii.tables
  add column link_fk name,
  add column link_referenced boolean not null default false,
  add column unenforced_join boolean not null default false,
  add column shared text not null default 'keep' check (shared in ('keep', 'erase'));

-- Registrations made before this release: the join is backed when a foreign key between the
-- two tables has exactly that column pair (this table -> its parent or subject table);
-- otherwise it was registered without one and stays, listed by pii.lint() as unenforced.
update pii.tables t
set link_fk = fk.conname
from (
  select r.relid, (pg_catalog.array_agg(c.conname order by c.conname))[1] as conname
  from pii.tables r
  left join pii.subject_table s on r.subject_attnum is not null
  join pg_catalog.pg_constraint c
    on c.contype = 'f' and c.conparentid = 0 and c.conrelid = r.relid
   and c.confrelid = coalesce(r.parent_relid, s.relid)
   and pg_catalog.array_position(c.conkey, coalesce(r.parent_fk_attnum, r.subject_attnum)) is not null
   and c.confkey[pg_catalog.array_position(c.conkey, coalesce(r.parent_fk_attnum, r.subject_attnum))]
       = coalesce(r.parent_key_attnum, s.key_attnum)
  where not exists (select from pii.subject_table x where x.relid = r.relid)
  group by r.relid
) fk
where fk.relid = t.relid;
update pii.tables t set unenforced_join = true
where t.link_fk is null and not exists (select from pii.subject_table s where s.relid = t.relid);

-- Per request: rows of referenced tables left intact because others share them.
alter table pii.requests add column shared_kept jsonb not null default '{}'::jsonb;

-- The signatures gain foreign_key / unenforced_join / shared (db/code/30_registry.sql), the
-- plan a capture statement per referenced table, erase_subjects and request_status a
-- shared_kept count (db/code/50_erasure.sql, 80_requests.sql).
drop function if exists pii.register_table(regclass, name, text, name);
drop function if exists pii.register_child_table(regclass, regclass, name, text, name);
drop function if exists pii_internal.erase_plan(text);
drop function if exists pii_internal.erase_resolved(text[], text[], text);
drop function if exists pii.erase_subjects(text[], text[], text);
drop function if exists pii.request_status(uuid);
-- run_erase_plan (0011's code) gains only_tables and a shared_kept count per step.
drop function if exists pii_internal.run_erase_plan(text, text[], text[], boolean, text[], oid[], text[]);
