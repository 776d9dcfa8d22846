-- migrate:up
-- Data change: chain the audit rows written before the chain existed (in id order) and
-- start both chain heads. Needs the code of …100001 (pii.chain_hash, pii.audit_entry_content).
alter table pii.audit disable trigger audit_no_update_delete;
update pii.audit a set chain_seq = n.seq
from (select x.id, pg_catalog.row_number() over (order by x.id) as seq from pii.audit x) n
where a.id = n.id;
update pii.audit a set entry_hash = pii.chain_hash('audit', pii.audit_entry_content(a)), secret_id = pii.secret_id();
update pii.audit a set prev_hash = l.prev_hash
from (select x.id, pg_catalog.lag(x.entry_hash) over (order by x.chain_seq) as prev_hash from pii.audit x) l
where a.id = l.id;
alter table pii.audit enable always trigger audit_no_update_delete;

insert into pii.chain_heads (chain, seq, last_hash)
select 'audit', coalesce(pg_catalog.max(a.chain_seq), 0),
       (select x.entry_hash from pii.audit x order by x.chain_seq desc limit 1)
from pii.audit a;
insert into pii.chain_heads (chain) values ('erasure_ledger');

-- migrate:down
delete from pii.chain_heads;
