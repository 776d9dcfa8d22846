-- Repeatable code: the erasure engine: plan (erase_plan), per-column erase and erased-state SQL, erase_subjects.

-- The erasure engine (F2-F7): for a batch of subjects, one set-based statement per
-- registered table, deepest child first, the subject table last. Statements are built
-- from the registry with format('%I'/'%L') and bound to parameters:
--   $1 text[] subject keys, $2 text[] scopes (parallel), $3/$4 the pseudonym key (pii_internal.as_owner).

-- How the rows of tbl (alias t) reach their subject: the registered parents to join
-- (FROM-list, aliases p1, p2, …), the join conditions, and the expressions holding the
-- subject key and scope on the table that has the key.
create or replace function pii_internal.build_subject_key_sql(tbl regclass, out from_list text, out join_sql text, out key_sql text,
                                    out scope_sql text, out key_type text, out scope_type text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reg pii.tables;
  cur regclass := tbl;
  alias text := 't';
  parent_alias text;
  depth integer := 0;
  conds text[] := '{}';
begin
  from_list := '';
  loop
    select * into reg from pii.tables r where r.relid = cur;
    if reg.relid is null then
      raise exception 'table % has no registered path to the subject', pii_internal.qualified_name(tbl) using errcode = '55000';
    end if;
    exit when reg.parent_relid is null;
    depth := depth + 1;
    parent_alias := 'p' || depth;
    from_list := from_list || case when depth > 1 then ', ' else '' end
                 || pg_catalog.format('%s %I', pii_internal.qualified_name(reg.parent_relid), parent_alias);
    conds := conds || pg_catalog.format('%I.%I = %I.%I', alias, pii_internal.column_name(cur, reg.parent_fk_attnum),
                                        parent_alias, pii_internal.column_name(reg.parent_relid, reg.parent_key_attnum));
    alias := parent_alias;
    cur := reg.parent_relid;
  end loop;
  join_sql := coalesce(pg_catalog.array_to_string(conds, ' and '), '');
  key_sql := pg_catalog.format('%I.%I', alias, pii_internal.column_name(cur, reg.subject_attnum));
  key_type := pii_internal.column_type(cur, reg.subject_attnum);
  if reg.scope_attnum is not null then
    scope_sql := pg_catalog.format('%I.%I', alias, pii_internal.column_name(cur, reg.scope_attnum));
    scope_type := pii_internal.column_type(cur, reg.scope_attnum);
  end if;
end
$$;
comment on function pii_internal.build_subject_key_sql(regclass) is 'Internal. Generates what pii_internal.subject_key_sql returns (uncached).';

-- Cached per plan generation (48_plan_cache).
create or replace function pii_internal.subject_key_sql(tbl regclass, out from_list text, out join_sql text, out key_sql text,
                                    out scope_sql text, out key_type text, out scope_type text)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  p text[] := pii_internal.cached_sql(pg_catalog.format('subject_key:%s', tbl::text), pg_catalog.format(
    '(select array[x.from_list, x.join_sql, x.key_sql, x.scope_sql, x.key_type, x.scope_type] from pii_internal.build_subject_key_sql(%s) x)', tbl::oid));
begin
  from_list := p[1]; join_sql := p[2]; key_sql := p[3]; scope_sql := p[4]; key_type := p[5]; scope_type := p[6];
end
$$;

-- Re-ingestion guards (F11): erased subjects must not come back with the next sync.
-- Statement-level AFTER triggers with transition tables check a whole INSERT, UPDATE,
-- upsert or COPY at once: the distinct subjects carrying PII are hashed (not every row)
-- and probed against the tombstones; an empty tombstone table costs one probe.

-- SQL predicate: column c of row t is in its erased state (NULL when nothing to check):
-- the erased_sql template of its strategy (47_strategies).
create or replace function pii_internal.column_erased_sql(tbl regclass, col smallint, strategy text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.erase_strategy_sql('erased_sql', tbl, col, strategy)
$$;
comment on function pii_internal.column_erased_sql(regclass, smallint, text) is 'Internal. SQL predicate: the column (alias t) is in the state its erase strategy leaves (NULL for keep).';

-- Erasure rewrites this table's subject key itself: the key is PII and no foreign key
-- ON UPDATE CASCADE from the subject table carries the pseudonym there.
create or replace function pii_internal.rewrites_pii_key(tbl regclass) returns boolean
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select exists (
    select from pii.tables t, pii.subject_table s
    where t.relid = tbl and s.kind = t.kind and s.key_is_pii and t.subject_attnum is not null
      and not exists (
        select from pg_catalog.pg_constraint fk
        where fk.conrelid = t.relid and fk.contype = 'f' and fk.confrelid = s.relid
          and fk.conkey = array[t.subject_attnum] and fk.confupdtype = 'c'))
$$;
comment on function pii_internal.rewrites_pii_key(regclass) is 'Internal. Whether erasure rewrites the table''s own subject key column (PII key, no cascading foreign key).';

-- SQL predicate: row t of a registered table is fully erased ('false' for tables whose
-- rows are deleted on erasure: any row of an erased subject is a trace).
create or replace function pii_internal.build_row_erased_sql(tbl regclass, action text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when action = 'delete' then 'false' else coalesce((
    -- Pseudonym tests (two hashes each) last: the first column holding PII ends the test.
    select pg_catalog.string_agg(x.pred, ' and ' order by x.hashes)
    from (
      select pii_internal.column_erased_sql(c.relid, c.attnum, c.erase) as pred, c.erase = 'pseudonym' as hashes
      from pii.columns c
      where c.relid = tbl and pii_internal.column_name(c.relid, c.attnum) is not null
      union all
      -- A PII key, in the subject table and wherever erasure rewrites it (no cascading FK).
      -- Rows are found by their raw key (or its keyed hash): such a row is never erased,
      -- however much its key looks like a pseudonym (anon_fan@news.example).
      select 'false', false
      from pii.tables t
      where t.relid = tbl and pii_internal.rewrites_pii_key(t.relid)
    ) x where x.pred is not null), 'true') end
$$;
comment on function pii_internal.build_row_erased_sql(regclass, text) is 'Internal. Generates what pii_internal.row_erased_sql returns (uncached).';

-- Cached per plan generation (48_plan_cache).
create or replace function pii_internal.row_erased_sql(tbl regclass, action text) returns text
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (pii_internal.cached_sql(pg_catalog.format('row_erased:%s:%s', tbl::text, action),
                                  pg_catalog.format('array[pii_internal.build_row_erased_sql(%s, %L)]', tbl::oid, action)))[1];
end
$$;
comment on function pii_internal.row_erased_sql(regclass, text) is 'Internal. SQL predicate: the row (alias t) holds no PII under the registry''s rules (exactly what erasure would change is already as erasure leaves it).';

-- What erasure does to a table's rows in mode erase: its own on_erase, or delete when an
-- ancestor's rows are deleted.
create or replace function pii_internal.erase_action(tbl regclass) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return (
    with recursive chain as (
      select t.relid, t.parent_relid, t.on_erase from pii.tables t where t.relid = tbl
      union all
      select p.relid, p.parent_relid, p.on_erase from pii.tables p join chain on p.relid = chain.parent_relid
    )
    select case when exists (select from pii.subject_table s where s.relid = tbl) then 'anonymize'
                when exists (select from chain where chain.on_erase = 'delete') then 'delete'
                else 'anonymize' end
  );
end
$$;
comment on function pii_internal.erase_action(regclass) is 'Internal. anonymize or delete: what erasure (mode erase) does to the table''s rows.';
comment on function pii_internal.subject_key_sql(regclass) is 'Internal. Parents to join, join conditions, and the subject key/scope expressions for a registered table (alias t).';

-- FROM-list and WHERE clause that select the rows of tbl (alias t) belonging to the
-- subjects bound as $1 (keys) and $2 (scopes).
create or replace function pii_internal.build_subject_rows_sql(tbl regclass, out from_list text, out where_sql text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  path record := pii_internal.subject_key_sql(tbl);
  reg pii.tables;
  key_cond text;
  first_join text;
  conds text[];
begin
  from_list := path.from_list;
  conds := case when path.join_sql = '' then '{}'::text[] else array[path.join_sql] end;
  -- The key type's own = (citext's compares case-insensitively), schema-qualified.
  key_cond := pg_catalog.format('%s %s any ($1::%s[])', path.key_sql, pii_internal.key_equality_sql(path.key_type), path.key_type);
  conds := conds || key_cond;
  if path.join_sql <> '' then
    -- The parent keys of these subjects, looked up first: the table's rows are then found
    -- through the index on its foreign key (= any (array)), instead of a hash join that
    -- scans the whole table once per chunk. Implied by the join, so the same rows.
    select * into reg from pii.tables r where r.relid = tbl;
    first_join := pg_catalog.format('%I.%I = %I.%I', 't', pii_internal.column_name(tbl, reg.parent_fk_attnum),
                                    'p1', pii_internal.column_name(reg.parent_relid, reg.parent_key_attnum));
    if not pg_catalog.starts_with(path.join_sql, first_join) then
      raise exception 'subject_rows_sql: the path of % does not start with its first hop', pii_internal.qualified_name(tbl) using errcode = 'XX000';
    end if;
    conds := conds || pg_catalog.format('t.%I = any (array(select p1.%I from %s where %s))',
      pii_internal.column_name(tbl, reg.parent_fk_attnum), pii_internal.column_name(reg.parent_relid, reg.parent_key_attnum), path.from_list,
      -- The joins beyond the first hop (subject_key_sql lists the first hop first).
      pg_catalog.array_to_string(array[nullif(pg_catalog.substr(path.join_sql, pg_catalog.length(first_join) + 6), ''), key_cond], ' and '));
  end if;
  if path.scope_sql is not null then
    -- The key lookup drives the index; the pair test keeps brand 1's key off brand 2's row.
    conds := conds || case when pii_internal.is_citext(path.key_type)
      then pg_catalog.format('(%s, %s) in (select u.s::%s, u.k from unnest($2, $1) as u (s, k))',
                             path.scope_sql, pii_internal.key_text_sql(path.key_sql, path.key_type), path.scope_type)
      else pg_catalog.format('(%s, %s) in (select u.s::%s, u.k::%s from unnest($2, $1) as u (s, k))',
                             path.scope_sql, path.key_sql, path.scope_type, path.key_type) end;
  end if;
  where_sql := pg_catalog.array_to_string(conds, ' and ');
end
$$;
comment on function pii_internal.build_subject_rows_sql(regclass) is 'Internal. Generates what pii_internal.subject_rows_sql returns (uncached).';

-- Cached per plan generation (48_plan_cache).
create or replace function pii_internal.subject_rows_sql(tbl regclass, out from_list text, out where_sql text)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  p text[] := pii_internal.cached_sql(pg_catalog.format('subject_rows:%s', tbl::text),
                                      pg_catalog.format('(select array[x.from_list, x.where_sql] from pii_internal.build_subject_rows_sql(%s) x)', tbl::oid));
begin
  from_list := p[1]; where_sql := p[2];
end
$$;
comment on function pii_internal.subject_rows_sql(regclass) is 'Internal. FROM-list and WHERE clause selecting a registered table''s rows (alias t) that belong to the subjects bound as $1/$2.';

-- The SQL expression a column takes on erasure (NULL when its rule is keep): the erase_sql
-- template of its strategy (47_strategies).
create or replace function pii_internal.erase_expression(tbl regclass, col smallint, strategy text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pii_internal.erase_strategy_sql('erase_sql', tbl, col, strategy)
$$;
comment on function pii_internal.erase_expression(regclass, smallint, text) is 'Internal. SQL expression for a column under its erase strategy (NULL for keep).';

-- SET list applying a table's erase rules (and the key's pseudonym when the key is PII
-- and no foreign key cascades it from the subject table). NULL when nothing changes.
create or replace function pii_internal.erase_set_list(tbl regclass) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.string_agg(pg_catalog.format('%I = %s', x.col, x.expr), ', ' order by x.col)
  from (
    select pii_internal.column_name(c.relid, c.attnum) as col, pii_internal.erase_expression(c.relid, c.attnum, c.erase) as expr
    from pii.columns c
    where c.relid = tbl and c.erase <> 'keep' and pii_internal.column_name(c.relid, c.attnum) is not null
    union all
    select pii_internal.column_name(t.relid, t.subject_attnum),
           pii_internal.pseudonym_sql(pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(t.relid, t.subject_attnum)),
                                                                pii_internal.column_type(t.relid, t.subject_attnum)))
    from pii.tables t
    where t.relid = tbl and pii_internal.rewrites_pii_key(t.relid)
  ) x
$$;
comment on function pii_internal.erase_set_list(regclass) is 'Internal. SET list of a table''s erase rules, NULL when erasure changes nothing in it.';

-- SQL predicate: row t of a table registered as referenced by its parent (address, which
-- customer.address_id references) belongs to the subjects bound as $1/$2 alone: no row
-- references it through any foreign key into the table, except rows of a registered table
-- of the same kind that themselves belong to those subjects, or to subjects of the kind
-- erased before, bound as $6/$8 (pii_internal.erased_co_owners); such rows are found by the
-- subject rows of that table, by tableoid and ctid. Rows of another kind's tables count as
-- owners, like rows of unregistered tables. 'true' when shared => erase or the table is not
-- such a table. Anti-joins, one per foreign key; pii.lint() lists the ones without an index.
create or replace function pii_internal.exclusively_owned_sql(tbl regclass) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  f record;
  conds text[] := '{}';
  cond text;
  alias text;
  inner_rows record;
  i integer := 0;
begin
  if not exists (select from pii.tables t where t.relid = tbl and t.link_referenced and t.shared = 'keep') then
    return 'true';
  end if;
  for f in select * from pii_internal.shared_row_references() r where r.referenced = tbl order by r.conname loop
    i := i + 1;
    alias := 'r' || i;
    select pg_catalog.string_agg(pg_catalog.format('%I.%I operator(pg_catalog.=) t.%I', alias, pii_internal.column_name(f.referencing, u.a),
                                                   pii_internal.column_name(tbl, u.b)), ' and ')
      into cond from unnest(f.conkey, f.confkey) as u (a, b);
    if exists (select from pii.tables t, pii.tables x where t.relid = f.referencing and x.relid = tbl and t.kind = x.kind) then
      -- Inside, t is the referencing table again (the subject rows' own alias): rows of the
      -- subjects being erased ($1/$2) or of subjects erased before ($6/$8, the same SQL).
      inner_rows := pii_internal.subject_rows_sql(f.referencing);
      cond := cond || pg_catalog.format(' and not exists (select from %s as t%s where ((%s) or (%s)) and t.tableoid operator(pg_catalog.=) %I.tableoid and t.ctid operator(pg_catalog.=) %I.ctid)',
                                        pii_internal.qualified_name(f.referencing),
                                        case when inner_rows.from_list = '' then '' else ', ' || inner_rows.from_list end,
                                        inner_rows.where_sql,
                                        pg_catalog.regexp_replace(pg_catalog.regexp_replace(inner_rows.where_sql, '\$1(?![0-9])', '$6', 'g'), '\$2(?![0-9])', '$8', 'g'),
                                        alias, alias);
    end if;
    conds := conds || pg_catalog.format('not exists (select from %s as %I where %s)', pii_internal.qualified_name(f.referencing), alias, cond);
    -- A placeholder the referencing rows are set to on erasure (set:<id>) is theirs all.
    conds := conds || (select pg_catalog.array_agg(pg_catalog.format('t.%I is distinct from %L::%s', pii_internal.column_name(tbl, f.confkey[1]),
                                                                    (pii_internal.parse_strategy(c.erase)).argument, pii_internal.column_type(tbl, f.confkey[1])))
                       from pii.columns c
                       where c.relid = f.referencing and c.attnum = f.conkey[1] and pg_catalog.cardinality(f.conkey) = 1
                         and (pii_internal.parse_strategy(c.erase)).name = 'set');
  end loop;
  return coalesce(pg_catalog.array_to_string(conds, ' and '), 'true');
end
$$;
comment on function pii_internal.exclusively_owned_sql(regclass) is 'Internal. SQL predicate: a row (alias t) of a referenced table is referenced only by rows of its kind''s subjects bound as $1/$2 or erased before ($6/$8) (shared => keep); true otherwise.';

-- The subjects erased before (in another batch) whose rows in registered tables of tbl's
-- kind reference the rows of tbl the subjects bound as subject_keys/scopes reach: by rule
-- zero such a row belongs to nobody alive, so it does not make a row shared. The deputy
-- reads who references the reached rows (keys as text, through each referencing table's
-- path to its subject; one SELECT per foreign key, UNION, by the foreign key's index); the
-- keys are hashed here and kept when their tombstone is marked erased (a subject allowed
-- back has none, and is an owner again). Empty when no registered table of the kind
-- references tbl, or tbl is shared => erase.
create or replace function pii_internal.erased_co_owners(tbl regclass, subject_keys text[], scopes text[],
                                                         out keys text[], out key_scopes text[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  reach record := pii_internal.subject_rows_sql(tbl);
  tbl_kind text := (select t.kind from pii.tables t where t.relid = tbl and t.shared = 'keep');
  selects text[];
  found record;
begin
  keys := '{}';
  select pg_catalog.array_agg(pg_catalog.format(
           'select %s as k, %s as s from %s as t%s where %s(%s) in (select %s from %s as t%s where %s)',
           pii_internal.key_text_sql(path.key_sql, path.key_type), coalesce(path.scope_sql || '::text', 'null::text'),
           pii_internal.qualified_name(f.referencing), case when path.from_list = '' then '' else ', ' || path.from_list end,
           case when path.join_sql = '' then '' else path.join_sql || ' and ' end,
           (select pg_catalog.string_agg(pg_catalog.format('t.%I', pii_internal.column_name(f.referencing, u.a)), ', ' order by u.i)
            from unnest(f.conkey) with ordinality as u (a, i)),
           (select pg_catalog.string_agg(pg_catalog.format('t.%I', pii_internal.column_name(tbl, u.b)), ', ' order by u.i)
            from unnest(f.confkey) with ordinality as u (b, i)),
           pii_internal.qualified_name(tbl), case when reach.from_list = '' then '' else ', ' || reach.from_list end, reach.where_sql)
         order by f.conname)
    into selects
  from pii_internal.shared_row_references() f
  join pii.tables r on r.relid = f.referencing and r.kind operator(pg_catalog.=) tbl_kind
  cross join lateral pii_internal.subject_key_sql(f.referencing) path
  where f.referenced = tbl;
  if selects is null then
    return;
  end if;
  found := pii_internal.as_owner(tbl, pg_catalog.format('select coalesce(pg_catalog.array_agg(x.k), ''{}''), pg_catalog.array_agg(x.s) from (%s) as x',
                                                        pg_catalog.array_to_string(selects, ' union ')),
                                 true, subject_keys, scopes);
  if pg_catalog.cardinality(found.found_keys) = 0 then
    return;
  end if;
  execute pg_catalog.format(
    $q$select coalesce(pg_catalog.array_agg(u.k), '{}'), pg_catalog.array_agg(u.s) from unnest($1::text[], $2::text[]) as u (k, s)
       where exists (select from pii_internal.tombstones tb where tb.subject_hash operator(pg_catalog.=) %s and tb.erased_at is not null)$q$,
    pii_internal.kind_hash_sql(tbl_kind, 'u.s', 'u.k'))
    into keys, key_scopes using found.found_keys, found.found_scopes;
end
$$;
comment on function pii_internal.erased_co_owners(regclass, text[], text[]) is 'Internal. Keys and scopes of subjects erased before whose rows of registered tables of the kind reference the rows of a referenced table the given subjects reach: bound as $6/$8 of its capture and statement, they do not make a row shared.';

-- One statement per registered table, in execution order: the order of the foreign keys
-- between registered tables (and of the registered joins), referencing rows before the
-- rows they reference, so delete mode never deletes a row still referenced; among equals the
-- deepest child first, the subject table last. A table whose ancestor's rows are deleted is
-- deleted too. A table its parent references (address) is reached by the keys a capture
-- statement selects before the plan runs (its parent's rows may be deleted by then), bound
-- as $5, and only rows no one else references are changed (exclusively_owned_sql).
create or replace function pii_internal.build_erase_plan(mode text)
returns table (relid regclass, table_name text, action text, depth integer, statement text, capture text)
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  r record;
  rows_sql record;
  set_list text;
  owned text;
  key_col text;
begin
  for r in
    with recursive tree as (
      select t.relid, 0 as depth, t.on_erase = 'delete' as deletes
      from pii.tables t
      where t.parent_relid is null and exists (select from pg_catalog.pg_class c where c.oid = t.relid)
      union all
      select c.relid, tree.depth + 1, tree.deletes or c.on_erase = 'delete'
      from pii.tables c join tree on c.parent_relid = tree.relid
    ),
    -- referencing -> referenced, between registered tables. In a cycle only the registered
    -- joins order (they never form one); pii.lint() names the cycle's constraints.
    edges (src, dst) as (
      select e.src, e.dst from pii_internal.plan_edges() e where e.cycle is null or e.registered_join
    ),
    -- How far a table is above the tables nothing registered references further: it runs
    -- before every table it references.
    level (relid, n) as (
      select tree.relid::oid, 0 from tree
      union
      select e.src, level.n + 1 from level join edges e on e.dst = level.relid
      where level.n < (select pg_catalog.count(*) from tree)
    )
    select tree.relid, tree.depth,
           case when mode = 'delete' then 'delete'
                when s.relid is not null then 'anonymize'
                when tree.deletes then 'delete'
                else 'anonymize' end as action,
           s.relid is not null as is_subject,
           coalesce(t.link_referenced, false) as referenced, t.parent_fk_attnum
    from tree
    left join pii.subject_table s on s.relid = tree.relid
    left join pii.tables t on t.relid = tree.relid
    order by (select pg_catalog.max(l.n) from level l where l.relid = tree.relid::oid) desc, s.relid is not null, tree.depth desc, tree.relid::oid
  loop
    relid := r.relid; table_name := pii_internal.qualified_name(r.relid); action := r.action; depth := r.depth; capture := null;
    set_list := case when r.action = 'anonymize' then pii_internal.erase_set_list(r.relid) end;
    continue when r.action = 'anonymize' and set_list is null;
    rows_sql := pii_internal.subject_rows_sql(r.relid);
    if r.referenced then
      key_col := pii_internal.column_name(r.relid, r.parent_fk_attnum);
      owned := pii_internal.exclusively_owned_sql(r.relid);
      -- The keys of the rows the subjects reach, split into owned by them alone and shared.
      capture := pg_catalog.format(
        'select coalesce(pg_catalog.array_agg(distinct x.k) filter (where x.owned), ''{}''), coalesce(pg_catalog.array_agg(distinct x.k) filter (where not x.owned), ''{}'') '
        'from (select t.%I::text as k, %s as owned from %s as t%s where %s) as x',
        key_col, owned, table_name, case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end, rows_sql.where_sql);
      -- Checked again when changing: a row someone referenced meanwhile is theirs too.
      rows_sql.from_list := '';
      rows_sql.where_sql := pg_catalog.format('t.%I operator(pg_catalog.=) any ($5::%s[]) and %s', key_col,
                                              pii_internal.column_type(r.relid, r.parent_fk_attnum), owned);
    end if;
    if r.action = 'delete' then
      statement := pg_catalog.format('delete from %s as t%s where %s', table_name,
                                     case when rows_sql.from_list = '' then '' else ' using ' || rows_sql.from_list end, rows_sql.where_sql);
    else
      -- Rows already in their erased state are not written again (no new row version,
      -- no index entries, no trigger work): erasing twice writes nothing.
      statement := pg_catalog.format('update %s as t set %s%s where %s and not (%s)', table_name, set_list,
                                     case when rows_sql.from_list = '' then '' else ' from ' || rows_sql.from_list end, rows_sql.where_sql,
                                     pii_internal.row_erased_sql(r.relid, 'anonymize'));
    end if;
    return next;
  end loop;
end
$$;
comment on function pii_internal.build_erase_plan(text) is 'Internal. Generates the steps pii_internal.erase_plan returns (uncached).';

-- Cached per plan generation (48_plan_cache), as one jsonb array of the steps. Tables are
-- named, never given by oid, here and in the cache's names: a restored backup (pg_restore)
-- gives every table a new oid, and its cache, restored with it, must still be right.
create or replace function pii_internal.erase_plan(mode text)
returns table (relid regclass, table_name text, action text, depth integer, statement text, capture text)
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return query
  select x.table_name::regclass, x.table_name, x.action, x.depth, x.statement, x.capture
  from pg_catalog.jsonb_to_recordset((pii_internal.cached_sql(pg_catalog.format('erase_plan:%s', mode), pg_catalog.format(
         $q$array[(select coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('table_name', p.table_name,
                    'action', p.action, 'depth', p.depth, 'statement', p.statement, 'capture', p.capture, 'ord', p.ord) order by p.ord), '[]')::text
                   from pii_internal.build_erase_plan(%L) with ordinality as p (relid, table_name, action, depth, statement, capture, ord))]$q$,
         mode)))[1]::jsonb) as x (table_name text, action text, depth integer, statement text, capture text, ord bigint)
  order by x.ord;
end
$$;
comment on function pii_internal.erase_plan(text) is 'Internal. The statements an erasure runs, in order (referencing rows before referenced ones), with the capture statement of tables their parent references; select * from pii_internal.erase_plan(''erase'') shows them.';

-- The mode of an erasure (erase_subjects, request_erasure): erase follows each table's
-- on_erase, delete removes every registered row.
create or replace function pii_internal.check_erase_mode(mode text) returns void
language plpgsql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  if mode is null or mode not in ('erase', 'delete') then
    raise exception 'mode must be erase or delete, not "%"', mode using errcode = '22023';
  end if;
end
$$;
comment on function pii_internal.check_erase_mode(text) is 'Internal. Raises 22023 unless mode is erase or delete.';

-- Which of the (canonical) subjects exist in the subject table, as
-- '<scope>' || chr(31) || '<key>' (scope empty when unscoped).
create or replace function pii_internal.matched_subjects(subject_keys text[], scopes text[], kind text) returns text[]
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  subj pii.subject_table := pii_internal.subject_kind(kind);
  match record;
  matched text[];
begin
  match := pii_internal.subject_rows_sql(subj.relid);
  -- The keys are read by the statement ((select $1), an InitPlan), not planned as a constant:
  -- estimating "= any" over a constant array costs a selectivity call per element (a second
  -- per million keys of a CSV import) before the index scan starts.
  match.where_sql := pg_catalog.replace(match.where_sql, 'any ($1::', 'any ((select $1)::');
  -- Read with the subject table owner's rights (casts and policies on it are theirs).
  select d.found_keys into matched from pii_internal.as_owner(subj.relid, pg_catalog.format(
    'select coalesce(pg_catalog.array_agg(coalesce(%s::text, '''') operator(pg_catalog.||) pg_catalog.chr(31) operator(pg_catalog.||) %s), ''{}''), null::text[] from %s as t where %s',
    case when subj.scope_attnum is null then 'null' else pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.scope_attnum)) end,
    pii_internal.key_text_sql(pg_catalog.format('t.%I', pii_internal.column_name(subj.relid, subj.key_attnum)),
                              pii_internal.column_type(subj.relid, subj.key_attnum)),
    pii_internal.qualified_name(subj.relid), match.where_sql),
    true, subject_keys, scopes) d;
  return matched;
end
$$;
comment on function pii_internal.matched_subjects(text[], text[], text) is 'Internal. The subjects (scope chr(31) key) among canonical keys that have a row in the subject table of their kind.';

-- Runs one step of the erasure plan for canonical subjects with its table owner's rights
-- (pii_internal.as_owner). A delete step whose rows a legal hold keeps (the pairs of
-- pii_internal.held_pairs) minimises those rows and deletes the others. Returns rows changed.
create or replace function pii_internal.erase_step(tbl regclass, action text, statement text, subject_keys text[], scopes text[],
                                                   held_keys text[], held_tables oid[], held_scopes text[]) returns bigint
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  stmts record;
  n bigint := 0;
begin
  -- The rows these statements leave are erased: the table's guard, whose statement
  -- trigger fires one trigger depth below this function, has nothing to check there (see
  -- pii_internal.own_erasure_statements). An error rolls the row back with the statement.
  insert into pii_internal.own_erasure_statements (backend_pid, relid, trigger_depth)
  values (pg_catalog.pg_backend_pid(), tbl, pg_catalog.pg_trigger_depth() operator(pg_catalog.+) 1);
  if action operator(pg_catalog.<>) 'delete' or coalesce(pg_catalog.cardinality(held_keys), 0) = 0 then
    n := (pii_internal.as_owner(tbl, statement, false, subject_keys, scopes)).n;
  else
    stmts := pii_internal.held_step_statements(tbl, statement);
    if stmts.minimise is not null then
      n := (pii_internal.as_owner(tbl, stmts.minimise, false, subject_keys, scopes, null, held_keys, held_tables, held_scopes)).n;
    end if;
    n := n operator(pg_catalog.+) (pii_internal.as_owner(tbl, stmts.delete_others, false, subject_keys, scopes, null,
                                                        held_keys, held_tables, held_scopes)).n;
  end if;
  delete from pii_internal.own_erasure_statements o
  where o.backend_pid operator(pg_catalog.=) pg_catalog.pg_backend_pid() and o.relid operator(pg_catalog.=) tbl
    and o.trigger_depth operator(pg_catalog.=) (pg_catalog.pg_trigger_depth() operator(pg_catalog.+) 1);
  return n;
end
$$;
comment on function pii_internal.erase_step(regclass, text, text, text[], text[], text[], oid[], text[]) is 'Internal. Runs one statement of pii_internal.erase_plan for canonical subjects through the table owner''s deputy (its guard is told the rows are Lethe''s own erased ones); rows a legal hold keeps are minimised, not deleted.';

-- Runs the erasure plan's statements (or its steps on the tables in only_tables) for canonical
-- subjects, or (count_only) counts the rows each would change (rows already in their erased
-- state do not count; the SELECT's row count comes back from the deputy), every statement
-- with its table owner's rights (pii_internal.as_owner). Tables their parent references are
-- reached by the keys their capture statements select first, while every join still holds
-- (split into owned by the subjects alone, and shared: per step, the rows kept). A legal hold
-- keeps such a table's rows whole (they are found by key, not by subject). Application code
-- runs there (triggers, checks, casts, policies) and its message may quote anyone: such an
-- error is raised again without its text; Lethe's own errors pass as they are. One handler
-- for the erasure, the guards and retention's preview.
create or replace function pii_internal.run_erase_plan(mode text, subject_keys text[], scopes text[], count_only boolean,
                                                       held_keys text[], held_tables oid[], held_scopes text[],
                                                       only_tables regclass[] default null, kind text default null,
                                                       out table_names text[], out rows_affected bigint[], out shared_kept bigint[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  relids regclass[];
  actions text[];
  statements text[];
  captures text[];
  owned text[] := '{}';
  others record;
  other_keys text[] := '{}';
  other_scopes text[] := '{}';
  captured record;
  rows_sql record;
  n bigint;
  err_state text;
  err_message text;
  err_context text;
  err_schema text;
  err_table text;
  err_constraint text;
  err_column text;
begin
  select coalesce(pg_catalog.array_agg(p.relid order by p.ord), '{}'), coalesce(pg_catalog.array_agg(p.table_name order by p.ord), '{}'),
         coalesce(pg_catalog.array_agg(p.action order by p.ord), '{}'), coalesce(pg_catalog.array_agg(p.statement order by p.ord), '{}'),
         coalesce(pg_catalog.array_agg(p.capture order by p.ord), '{}')
    into relids, table_names, actions, statements, captures
  from pii_internal.erase_plan(mode) with ordinality as p (relid, table_name, action, depth, statement, capture, ord)
  where (only_tables is null or p.relid = any (only_tables))
    -- The tables of the subjects' kind (NULL: the install's only kind).
    and p.relid in (select t.relid from pii.tables t
                    where t.kind operator(pg_catalog.=) (pii_internal.subject_kind(run_erase_plan.kind)).kind);
  rows_affected := '{}';
  shared_kept := '{}';
  begin
    for i in 1 .. coalesce(pg_catalog.cardinality(relids), 0) loop
      shared_kept[i] := 0;
      if captures[i] is not null then
        -- Rows of subjects erased before (another batch) do not make a row shared.
        others := pii_internal.erased_co_owners(relids[i], subject_keys, scopes);
        other_keys[i] := others.keys::text;
        other_scopes[i] := others.key_scopes::text;
        captured := pii_internal.as_owner(relids[i], captures[i], true, subject_keys, scopes, null, others.keys, null, others.key_scopes);
        owned[i] := captured.found_keys::text;
        shared_kept[i] := pg_catalog.cardinality(captured.found_scopes);
      end if;
    end loop;
    for i in 1 .. coalesce(pg_catalog.cardinality(relids), 0) loop
      if captures[i] is not null and count_only then
        n := pg_catalog.cardinality(owned[i]::text[]);
      elsif captures[i] is not null then
        n := case when actions[i] = 'delete' and coalesce(pg_catalog.cardinality(held_keys), 0) > 0 then 0
                  else (pii_internal.as_owner(relids[i], statements[i], false, subject_keys, scopes, owned[i]::text[],
                                              other_keys[i]::text[], null, other_scopes[i]::text[])).n end;
      elsif count_only then
        -- count(*), not the rows: nothing is materialised, and the planner may count in parallel.
        rows_sql := pii_internal.subject_rows_sql(relids[i]);
        n := (pii_internal.as_owner(relids[i], pg_catalog.format('select array[pg_catalog.count(*)::text], null::text[] from %s as t%s where %s%s',
                                    pii_internal.qualified_name(relids[i]),
                                    case when rows_sql.from_list = '' then '' else ', ' || rows_sql.from_list end, rows_sql.where_sql,
                                    case when actions[i] = 'delete' then ''
                                         else ' and not (' || pii_internal.row_erased_sql(relids[i], 'anonymize') || ')' end),
                                    true, subject_keys, scopes)).found_keys[1]::bigint;
      else
        n := pii_internal.erase_step(relids[i], actions[i], statements[i], subject_keys, scopes, held_keys, held_tables, held_scopes);
      end if;
      rows_affected := rows_affected || n;
    end loop;
  exception when others then
    get stacked diagnostics err_state = returned_sqlstate, err_message = message_text, err_context = pg_exception_context,
                            err_schema = schema_name, err_table = table_name, err_constraint = constraint_name, err_column = column_name;
    if pii_internal.raised_by_lethe(err_context) then
      raise;
    end if;
    perform pii_internal.raise_without_text(case when count_only then 'counting rows to change' else 'erasure' end,
                                            err_state, err_message, err_schema, err_table, err_constraint, err_column);
  end;
end
$$;
comment on function pii_internal.run_erase_plan(text, text[], text[], boolean, text[], oid[], text[], regclass[], text) is 'Internal. Runs (or counts the rows of) pii_internal.erase_plan''s statements over the tables of a kind (NULL: the only kind) for canonical subjects through the table owners'' deputies, captures of referenced tables first: per step its table, rows changed and shared rows kept; an application error is raised again without its text.';

-- The first problem of pii_internal.plan_problems(mode) as (table, constraint, problem,
-- hint), empty when the plan can run; cached per plan generation (48_plan_cache).
create or replace function pii_internal.plan_problem(mode text) returns text[]
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
begin
  return pii_internal.cached_sql(pg_catalog.format('plan_problem:%s', mode), pg_catalog.format(
    $q$coalesce((select array[p.table_name, p.constraint_name, p.problem, p.hint] from pii_internal.plan_problems(%L) p limit 1), '{}')$q$, mode));
end
$$;
comment on function pii_internal.plan_problem(text) is 'Internal. The first problem pii_internal.plan_problems finds for a mode (table, constraint, problem, hint), empty when the plan can run.';

-- Erases already-resolved subjects (canonical keys and scopes). Returns the statements'
-- row counts in execution order and which subjects exist in the subject table
-- ('<scope>' || chr(31) || '<key>'). Loops over tables, never over subjects.
create or replace function pii_internal.erase_resolved(subject_keys text[], scopes text[], mode text, kind text,
                                   out table_names text[], out rows_affected bigint[], out matched text[], out held_until date,
                                   out shared_kept bigint[])
language plpgsql
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  problem text[];
  held record;
begin
  perform pii_internal.check_erase_mode(mode);
  -- A plan that would violate a constraint is refused before anything changes.
  problem := pii_internal.plan_problem(mode);
  if pg_catalog.cardinality(problem) > 0 then
    raise exception 'erasure (mode %) cannot run: %', mode, problem[3] using errcode = '55000', hint = problem[4], constraint = problem[2];
  end if;
  matched := pii_internal.matched_subjects(subject_keys, scopes, kind);
  -- Rows under a legal hold are minimised instead of deleted (empty while no hold is active).
  held := pii_internal.held_pairs(subject_keys, scopes, kind);
  held_until := held.held_until;
  -- While the values are still there: the keyed hashes of the subjects' identifiers.
  perform pii_internal.tombstone_identifiers(kind, subject_keys, scopes);
  -- The guards see these statements too; rows they leave hold no PII, so they pass.
  select r.table_names, r.rows_affected, r.shared_kept into table_names, rows_affected, shared_kept
  from pii_internal.run_erase_plan(mode, subject_keys, scopes, false, held.held_keys, held.held_tables, held.held_scopes, null, kind) r;
end
$$;
comment on function pii_internal.erase_resolved(text[], text[], text, text) is 'Internal. Refuses a plan that would violate a constraint (55000), then runs pii_internal.erase_plan over the tables of a kind for its canonical subjects, after tombstoning their identifiers (rows a legal hold keeps are minimised, not deleted); returns per-table counts and shared rows kept, the subjects found and the latest end of the holds that kept rows.';

-- {table: shared rows kept} for the audit and requests, tables with none left out.
create or replace function pii_internal.shared_kept_counts(table_names text[], shared_kept bigint[]) returns jsonb
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  select coalesce(pg_catalog.jsonb_object_agg(u.t, u.k) filter (where u.k operator(pg_catalog.>) 0), '{}'::jsonb)
  from unnest(table_names, shared_kept) as u (t, k)
$$;
comment on function pii_internal.shared_kept_counts(text[], bigint[]) is 'Internal. {table: shared rows kept} of an erasure, tables with none left out.';

create or replace function pii.erase_subjects(subject_keys text[], scopes text[] default null, mode text default 'erase', kind text default null)
returns table (table_name text, rows_affected bigint, shared_kept bigint)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  kind_ text;
  keys text[];
  scps text[];
  hashes bytea[];
  pseudonyms text[];
  buckets integer[];
  result record;
begin
  perform pii_internal.check_erase_mode(mode);
  -- Before anything else: waits for guarded writes in flight to commit (their rows are
  -- then seen by the statements below), and makes later ones wait until this
  -- transaction ends (their guards then see its tombstones). See wait_for_erasures.
  lock table pii_internal.erasure_lock in share row exclusive mode;
  kind_ := (pii_internal.subject_kind(kind)).kind;
  -- Each subject hashed and bucketed once, in the pass that resolves it.
  select coalesce(pg_catalog.array_agg(r.subject_key), '{}'), coalesce(pg_catalog.array_agg(r.scope), '{}'),
         coalesce(pg_catalog.array_agg(r.subject_hash), '{}'), coalesce(pg_catalog.array_agg(r.pseudonym), '{}'),
         coalesce(pg_catalog.array_agg(r.bucket), '{}')
    into keys, scps, hashes, pseudonyms, buckets
  from pii_internal.resolve_subjects(subject_keys, scopes, kind => kind_, with_buckets => true) r;

  -- Tombstoned (and marked erased) before the statements run, so guards see them.
  perform pii_internal.mark_erased(hashes, pseudonyms, null, null, kind_, buckets);
  result := pii_internal.erase_resolved(keys, scps, mode, kind_);

  perform pii_internal.write_audit('erase_subjects', null, pg_catalog.jsonb_build_object(
    'mode', mode, 'kind', kind_, 'subjects', pg_catalog.cardinality(keys), 'matched', pg_catalog.cardinality(result.matched),
    'rows', (select pg_catalog.jsonb_object_agg(u.t, u.n) from unnest(result.table_names, result.rows_affected) as u (t, n)),
    'shared_kept', pii_internal.shared_kept_counts(result.table_names, result.shared_kept)));
  raise notice 'erased % subjects (% matched, % unmatched)', pg_catalog.cardinality(keys), pg_catalog.cardinality(result.matched),
    pg_catalog.cardinality(keys) - pg_catalog.cardinality(result.matched);

  return query select u.t, u.n, u.k from unnest(result.table_names, result.rows_affected, result.shared_kept) as u (t, n, k);
end
$$;
comment on function pii.erase_subjects(text[], text[], text, text) is
$$Erases subjects of a kind now, set-based, in the caller's transaction: one statement per registered table of the kind,
in the order of the foreign keys (referencing rows first). mode erase: each table's on_erase (anonymize: apply column
strategies; delete: remove rows); mode delete: every registered row and the subject row go. Keys are cast to the key
column's type; unknown keys are ignored and counted (NOTICE). Scoped installs pass scopes (one for all keys, or one per
key). Subjects are tombstoned (keyed hash only, and their registered identifiers' keyed hashes). kind may be omitted
when the install has one kind. shared_kept: rows of a referenced table (an address) left intact because others (staff,
stores, other customers) reference them too. A plan that would violate a constraint is refused before anything
changes (55000). Verify afterwards with pii.verify_erasure_keys(the same keys).
Example: select * from pii.erase_subjects(array['42', '43']); select * from pii.erase_subjects(array['7'], kind => 'staff');$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.erase_subjects(text[], text[], text, text) to pii_operator;

-- Erases again, under the current registry, every erased subject of a kind whose row is
-- still in the subject table (erased with on_erase anonymize): a column registered after
-- the erasure, or a value pseudonymised by 0.1.0 (before migration 0013's pseudonym key:
-- untagged, so verification and guards do not take it as erased), is erased now. The
-- subjects are found by their tombstones' hashes (every key of the subject table read with
-- its owner's rights and hashed, pii_internal.subjects_by_hash), never by a key Lethe kept;
-- they are erased in batches of pii.settings.max_keys_per_call, each one pii.erase_subjects
-- (audited, in the ledger). Subjects whose row is gone (delete) or whose key was itself
-- erased (key_is_pii) cannot be found again.
create or replace function pii.reapply_erasure(kind text default null)
returns table (table_name text, rows_affected bigint, shared_kept bigint)
language plpgsql security definer
set search_path = pg_catalog, pii, pg_temp
as $$
#variable_conflict use_column
declare
  subj pii.subject_table := pii_internal.subject_kind(kind);
  batch integer := (select s.max_keys_per_call from pii.settings s);
  found record;
  n integer;
begin
  select f.subject_keys, f.scopes into found
  from pii_internal.subjects_by_hash(
         array(select tb.subject_hash from pii_internal.tombstones tb
               where tb.kind operator(pg_catalog.=) subj.kind and tb.erased_at is not null), subj.kind) f;
  n := coalesce(pg_catalog.cardinality(found.subject_keys), 0);
  if n operator(pg_catalog.=) 0 then
    return;
  end if;
  return query
    select r.table_name, pg_catalog.sum(r.rows_affected)::bigint, pg_catalog.sum(r.shared_kept)::bigint
    from pg_catalog.generate_series(0, (n - 1) / batch) as b (i)
    cross join lateral pii.erase_subjects(found.subject_keys[b.i * batch + 1 : (b.i + 1) * batch],
                                          case when subj.scope_attnum is not null then found.scopes[b.i * batch + 1 : (b.i + 1) * batch] end,
                                          'erase', subj.kind) r
    group by r.table_name
    order by r.table_name;
end
$$;
comment on function pii.reapply_erasure(text) is
$$Erases again, under the current registry, every erased subject of a kind whose subject row is still there (on_erase
anonymize): after registering a column later, or after upgrading from 0.1.0, whose pseudonyms (untagged) verification
reports as residuals. Subjects are found by their tombstones' keyed hashes; batches of pii.settings.max_keys_per_call,
each a pii.erase_subjects call (audited, in the ledger). Rows per table changed. kind may be omitted with one kind.
Example: select * from pii.reapply_erasure();  -- then pii.verify_erasure(request) is empty again$$;
revoke execute on function pii.reapply_erasure(text) from public;
grant execute on function pii.reapply_erasure(text) to pii_admin;
