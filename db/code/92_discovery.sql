-- Repeatable code: PII discovery (discover) and its rule catalogs.

-- PII discovery (F23): columns of the application's tables that look like personal data
-- but have no rule, found by their names (in English, German, French, Spanish, Italian,
-- Portuguese, Dutch), their types (inet), and a small sample of their values (email,
-- phone, IBAN, card, IPv4/IPv6 patterns), including keys inside jsonb documents.
-- Samples are read with TABLESAMPLE SYSTEM (pages, never a full scan) or, for tables of
-- a few pages, LIMIT; only counts leave the function, never a sampled value.

-- Name rules, tried in order (the first that matches wins). pattern is matched against the
-- column name in snake case (camelCase split), lower-cased, accents kept.
create or replace function pii_internal.discovery_name_rules()
returns table (rule text, pattern text, type_categories text, category text, mask text)
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  values
    ('an email address', '(^|_)(e_?mail|mail|email_?address|e_?mail_?adresse|courriel|correo|correo_electronico|posta_elettronica)(_|$)', 'S', 'contact', 'email'),
    ('an IP address', '(^|_)(ip|ip_?address|ip_?addr|ipaddr|ipv4|ipv6|remote_?addr|client_?ip|x_?forwarded_?for|ip_?adresse|direccion_ip)(_|$)', 'SI', 'network', 'hide'),
    ('a phone number', '(^|_)(phone|phone_?number|telephone|t[eé]l[eé]phone|tel|telefon|telefonnummer|tel[eé]fono|telefone|telemovel|handy|handynummer|msisdn|fax|whatsapp|portable|cellulare|movil|m[oó]vil)(_|$)|^(mobile|cell|mobile_?(phone|number|no|nr)|cell_?(phone|number))$', 'SN', 'contact', 'partial:3,2'),
    ('a first name', '(^|_)(first_?name|firstname|given_?name|forename|vorname|pr[eé]nom|nombre|nome|voornaam)(_|$)', 'S', 'name', 'partial:1,0'),
    ('a last name', '(^|_)(last_?name|lastname|surname|family_?name|nachname|familienname|nom|nom_?de_?famille|apellidos?|cognome|sobrenome|achternaam)(_|$)', 'S', 'name', 'hide'),
    ('a person''s name', '^(name|full_?name|fullname|display_?name|contact_?name|customer_?name|client_?name|shipping_?name|billing_?name|recipient_?name|person_?name|user_?name|username|maiden_?name|middle_?name|nick_?name|nickname|nombre_?completo|nom_?complet|vollst[aä]ndiger_?name)$', 'S', 'name', 'partial:1,0'),
    ('a date of birth', '(^|_)(birth|birthday|birthdate|birth_?date|date_?of_?birth|dob|born|geburtsdatum|geburtstag|naissance|date_?de_?naissance|fecha_?de_?nacimiento|fecha_?nacimiento|nacimiento|data_?di_?nascita|data_?de_?nascimento|nascita|nascimento|geboortedatum)(_|$)', 'SD', 'demographic', 'year'),
    ('a postal address', '(^|_)(address|addr|address_?line_?[0-9]?|street|street_?address|house_?number|strasse|stra(ss|ß)e|hausnummer|anschrift|adresse|rue|direcci[oó]n|calle|indirizzo|via|endere[cç]o|rua|adres|straat)(_|$)', 'S', 'address', 'hide'),
    ('a postcode', '(^|_)(zip|zip_?code|zipcode|postcode|post_?code|postal_?code|plz|postleitzahl|code_?postal|c[oó]digo_?postal|cap|cep|postcode_?nl)(_|$)', 'SN', 'address', 'hide'),
    ('a bank account or card number', '(^|_)(iban|bic|swift|account_?number|bank_?account|kontonummer|card_?number|credit_?card|cc_?number|pan|cvv|cvc|tarjeta|numero_?de_?cuenta|carte_?bancaire)(_|$)', 'SN', 'financial', 'hide'),
    ('a government identifier', '(^|_)(ssn|social_?security(_?number)?|national_?id|national_?insurance|nin|nino|tax_?id|tin|vat_?id|passport|passport_?(number|no|nr)|reisepass|personalausweis|ausweis(_?nummer)?|steuer_?id|steuernummer|dni|nie|nif|cpf|cnp|pesel|bsn|codice_?fiscale|num[eé]ro_?de_?s[eé]curit[eé]_?sociale|id_?card|driver_?licen[cs]e|driving_?licen[cs]e|f[uü]hrerschein)(_|$)', 'SN', 'government_id', 'hide'),
    ('a geolocation', '(^|_)(lat|latitude|lon|lng|longitude|geo|geolocation|gps|coordinates|geo_?point|location)(_|$)', 'SNG', 'location', 'hide'),
    ('gender (special category adjacent)', '(^|_)(gender|sex|geschlecht|sexe|sexo|genere)(_|$)', 'SE', 'demographic', 'hide')
$$;
comment on function pii_internal.discovery_name_rules() is 'Internal. Column-name rules of pii.discover: what the name suggests, the type categories it applies to, and the suggested category and mask.';

-- Value patterns of sampled text (case-insensitive). email is unanchored (addresses inside
-- free text count); the others must be the whole value.
create or replace function pii_internal.discovery_value_rules()
returns table (key text, rule text, pattern text, min_share numeric, category text, mask text)
language sql immutable
set search_path = pg_catalog, pii, pg_temp
as $$
  values
    ('email', 'email addresses', '[a-z0-9._%+-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}', 0.0, 'contact', 'email'),
    ('ipv4', 'IPv4 addresses', '^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(/[0-9]{1,2})?$', 0.5, 'network', 'hide'),
    ('ipv6', 'IPv6 addresses', '^(?=.*(::|[0-9a-f]{3,4}:[0-9a-f]{1,4}:))[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}(/[0-9]{1,3})?$', 0.5, 'network', 'hide'),
    ('iban', 'IBANs', '^[a-z]{2}[0-9]{2} ?[a-z0-9]{4}( ?[a-z0-9]{1,4}){2,7}$', 0.5, 'financial', 'hide'),
    ('card', 'payment card numbers', '^[2-6][0-9]{3}([ -]?[0-9]{4}){2}[ -]?[0-9]{1,7}$', 0.5, 'financial', 'hide'),
    ('phone', 'phone numbers', '^(\+|00|0)[0-9][0-9 ()./-]{5,18}[0-9]$|^\+?[0-9]{1,4}[ ./-]\(?[0-9]{1,5}\)?([ ./-]?[0-9]{2,5}){2,4}$', 0.5, 'contact', 'partial:3,2')
$$;
comment on function pii_internal.discovery_value_rules() is 'Internal. Value patterns of pii.discover and the share of sampled values that must match.';

-- A column name or jsonb key in snake case: customerEmail, Customer-Email -> customer_email.
create or replace function pii_internal.discovery_normalize(name_ text) returns text
language sql immutable strict parallel safe
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.lower(pg_catalog.regexp_replace(pg_catalog.regexp_replace(name_, '([a-z0-9])([A-Z])', '\1_\2', 'g'), '[^[:alnum:]]+', '_', 'g'))
$$;
comment on function pii_internal.discovery_normalize(text) is 'Internal. A name in lower snake case (camelCase split, punctuation to _), as the name rules expect.';

-- A suggested registration for a finding.
create or replace function pii_internal.discovery_suggestion(tbl regclass, col name, category text, mask text, jsonb_key text default null)
returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  att record;
  reg pii.tables;
  rule pii.columns;
  erase text;
  mask_ text := mask;
  prefix text := '';
  keys text[];
begin
  select a.attnotnull, t.typcategory, t.typname into att
  from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
  where a.attrelid = tbl and a.attname = col;
  select * into reg from pii.tables x where x.relid = tbl;
  if reg.relid is null then
    prefix := pg_catalog.format('select pii.register_table(%L, ''<subject column>'', ''anonymize'');  ', pii_internal.qualified_name(tbl));
  end if;
  if jsonb_key is not null then
    select * into rule from pii.columns c where c.relid = tbl and c.attnum = (select a.attnum from pg_catalog.pg_attribute a where a.attrelid = tbl and a.attname = col);
    if pg_catalog.strpos(jsonb_key, '.') > 0 then
      -- jsonb_remove removes top-level keys only.
      return prefix || pg_catalog.format('select pii.register_column(%L, %L, ''null'', ''hide'', %L);  -- nested key %s: jsonb_remove cannot reach it',
                                         pii_internal.qualified_name(tbl), col, category, jsonb_key);
    end if;
    keys := case when (pii_internal.parse_strategy(rule.erase)).name = 'jsonb_remove'
                 then pg_catalog.string_to_array((pii_internal.parse_strategy(rule.erase)).argument, ',') else '{}' end;
    return prefix || pg_catalog.format('select pii.register_column(%L, %L, %L, %L, %L);', pii_internal.qualified_name(tbl), col,
                                       'jsonb_remove:' || pg_catalog.array_to_string(keys || jsonb_key, ','),
                                       coalesce(rule.mask, 'hide'), coalesce(rule.category, category));
  end if;
  if mask_ in ('email') or mask_ like 'partial:%' then
    if att.typcategory <> 'S' then mask_ := 'hide'; end if;
  elsif mask_ = 'year' then
    if att.typname not in ('date', 'timestamp', 'timestamptz') then mask_ := 'hide'; end if;
  end if;
  erase := case when not att.attnotnull then 'null'
                when att.typcategory = 'S' then 'set:'
                else 'set:<value>' end;
  return prefix || pg_catalog.format('select pii.register_column(%L, %L, %L, %L, %L);', pii_internal.qualified_name(tbl), col, erase, mask_, category);
end
$$;
comment on function pii_internal.discovery_suggestion(regclass, name, text, text, text) is 'Internal. The register_column call pii.discover suggests (with register_table first when the table is not registered).';

-- jsonb object keys are data (an email used as a key): shown only to a caller (the
-- session's login) that may read the table itself; others see a keyed hash of the key
-- path, stable across runs, so findings can still be told apart and followed up.
create or replace function pii_internal.discovery_key_label(tbl regclass, path text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when pg_catalog.has_table_privilege(session_user, tbl, 'SELECT') then path
              else '#' || pg_catalog.left(pg_catalog.encode(pii_internal.hmac('jsonb key' || pg_catalog.chr(31) || path), 'hex'), 12) end
$$;
comment on function pii_internal.discovery_key_label(regclass, text) is 'Internal. A jsonb key path as pii.discover shows it: the path to callers who may read the table, a keyed hash to others.';

-- The suggestion for a jsonb key finding: the register_column call, or, for a caller who
-- may not read the table, where to get it (the call would name the key).
create or replace function pii_internal.discovery_key_suggestion(tbl regclass, col name, category text, mask text, path text) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select case when pg_catalog.has_table_privilege(session_user, tbl, 'SELECT')
              then pii_internal.discovery_suggestion(tbl, col, category, mask, path)
              else pg_catalog.format('-- the key is data: run select * from pii.discover(); as a role that may read %s to see it and the register_column call', pii_internal.qualified_name(tbl)) end
$$;
comment on function pii_internal.discovery_key_suggestion(regclass, name, text, text, text) is 'Internal. The suggestion for a jsonb key finding, hidden from callers who may not read the table.';

-- The FROM clause of a bounded sample of a table: LIMIT alone for a table of a few pages,
-- TABLESAMPLE SYSTEM (whole pages, chosen at random) sized from the planner's estimates
-- otherwise. Partitioned tables are sized from their leaf partitions.
create or replace function pii_internal.discovery_sample_sql(tbl regclass, sample_rows integer, columns text) returns text
language plpgsql stable
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  pages double precision;
  tuples double precision;
  pct double precision;
begin
  select pg_catalog.sum(pg_catalog.pg_relation_size(p.relid)) / pg_catalog.current_setting('block_size')::double precision,
         pg_catalog.sum(case when c.reltuples > 0 then c.reltuples else 0 end)
    into pages, tuples
  from (select tbl as relid  -- pg_partition_tree lists nothing for a plain table
        union
        select t.relid from pg_catalog.pg_partition_tree(tbl) t where t.isleaf) p
  join pg_catalog.pg_class c on c.oid = p.relid;
  pages := coalesce(pages, 0);
  if pages <= 16 then
    return pg_catalog.format('select %s from %s t limit %s', columns, pii_internal.qualified_name(tbl), sample_rows);
  end if;
  if coalesce(tuples, 0) <= 0 then
    tuples := pages * 50;  -- never analyzed: assume narrow rows
  end if;
  -- Three times the rows wanted (pages are uneven), at least one page in a thousand.
  pct := least(100.0, greatest(0.001, 300.0 * sample_rows / tuples));
  return pg_catalog.format('select %s from %s t tablesample system (%s) limit %s', columns, pii_internal.qualified_name(tbl),
                           pg_catalog.round(pct::numeric, 4), sample_rows);
end
$$;
comment on function pii_internal.discovery_sample_sql(regclass, integer, text) is 'Internal. SELECT of a bounded sample (TABLESAMPLE SYSTEM, or LIMIT for small tables) of some columns of a table.';

-- pii.discover in steps: the tables it looks at (discovery_tables), per table the findings by
-- column name and type (discovery_by_name), the columns whose values it samples
-- (discovery_columns, discovery_sample_query) and the findings by sampled value and jsonb key
-- (discovery_by_value).

-- The application's tables: every plain or partitioned (root) table outside Lethe's schemas,
-- graphile-worker's, the catalogs and extensions, and whether Lethe's owner may read it.
create or replace function pii_internal.discovery_tables()
returns table (relid regclass, name text, readable boolean)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select c.oid::regclass, pii_internal.qualified_name(c.oid), pg_catalog.has_table_privilege(c.oid, 'SELECT')
  from pg_catalog.pg_class c
  join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p') and not c.relispartition
    and n.nspname not in ('pii', 'pii_internal', 'masked', 'graphile_worker', 'information_schema')
    and n.nspname !~ '^pg_'
    and not exists (select from pg_catalog.pg_depend d
                    where d.classid = 'pg_catalog.pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
  order by 2
$$;
comment on function pii_internal.discovery_tables() is 'Internal. Step of pii.discover: the application''s tables it looks at, and whether Lethe''s owner may read each.';

-- A table's live columns with their (base) type, normalised name, rule and whether they link
-- rows to their subject; sampled: whether discovery samples the column's values (unregistered
-- text and jsonb columns, columns classified as not PII (keep/clear), and jsonb columns whose
-- rule removes only some keys).
create or replace function pii_internal.discovery_columns(tbl regclass)
returns table (attnum smallint, attname name, typcategory "char", typname name, norm text, erase text, mask text, link boolean, sampled boolean)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select x.*, not x.link and (x.typcategory = 'S' or x.typname in ('json', 'jsonb'))
              and (x.erase is null or (x.erase = 'keep' and x.mask = 'clear') or (pii_internal.parse_strategy(x.erase)).name = 'jsonb_remove')
  from (
    select a.attnum, a.attname, t.typcategory, t.typname, pii_internal.discovery_normalize(a.attname), r.erase, r.mask,
           pii_internal.is_link_column(tbl, a.attnum)
    from pg_catalog.pg_attribute a
    join pg_catalog.pg_type t on t.oid = coalesce(nullif((select bt.typbasetype from pg_catalog.pg_type bt where bt.oid = a.atttypid), 0), a.atttypid)
    left join pii.columns r on r.relid = tbl and r.attnum = a.attnum
    where a.attrelid = tbl and a.attnum > 0 and not a.attisdropped
  ) x (attnum, attname, typcategory, typname, norm, erase, mask, link)
  order by x.attnum
$$;
comment on function pii_internal.discovery_columns(regclass) is 'Internal. Step of pii.discover: a table''s columns with type, normalised name, rule, link flag and whether their values are sampled.';

-- Findings by column name (the first name rule that matches) and by type (inet, cidr), for
-- columns with no rule that do not link rows to their subject.
create or replace function pii_internal.discovery_by_name(tbl regclass)
returns table (column_name text, reason text, suggestion text)
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select c.attname,
         case when nr.rule is not null then pg_catalog.format('name suggests %s', nr.rule) else pg_catalog.format('type %s holds IP addresses', c.typname) end,
         pii_internal.discovery_suggestion(tbl, c.attname, coalesce(nr.category, 'network'), coalesce(nr.mask, 'hide'))
  from pii_internal.discovery_columns(tbl) c
  left join lateral (select x.rule, x.category, x.mask
                     from pii_internal.discovery_name_rules() with ordinality as x (rule, pattern, type_categories, category, mask, n)
                     where c.norm ~ x.pattern and pg_catalog.strpos(x.type_categories, c.typcategory) > 0
                     order by x.n limit 1) nr on true
  where c.erase is null and not c.link and (nr.rule is not null or c.typname in ('inet', 'cidr'))
  order by c.attnum
$$;
comment on function pii_internal.discovery_by_name(regclass) is 'Internal. Step of pii.discover: columns with no rule whose name (or type) suggests PII, with the suggested registration.';

-- The one sampling query of a table: per sampled column (and per jsonb key path, three
-- levels deep), how many sampled values match each value rule. Counts only.
create or replace function pii_internal.discovery_sample_query(tbl regclass, sample_rows integer) returns text
language sql stable
set search_path = pg_catalog, pii, pg_temp
as $$
  select pg_catalog.format(
    $q$with recursive s as (%s),
     cells as (
       select v.i, v.val, v.doc from s cross join lateral (values %s) v (i, val, doc)
     ),
     walk (i, path, j, depth) as (
       select c.i, e.key, e.value, 1
       from cells c
       cross join lateral pg_catalog.jsonb_each(case when pg_catalog.jsonb_typeof(c.doc) = 'object' then c.doc else '{}'::jsonb end) e
       union all
       select w.i, w.path operator(pg_catalog.||) '.' operator(pg_catalog.||) e.key, e.value, w.depth operator(pg_catalog.+) 1
       from walk w
       cross join lateral pg_catalog.jsonb_each(case when pg_catalog.jsonb_typeof(w.j) = 'object' then w.j else '{}'::jsonb end) e
       where w.depth operator(pg_catalog.<) 3
     ),
     vals (i, path, val) as (
       select c.i, null::text, c.val from cells c where c.val is not null
       union all
       select w.i, w.path, w.j operator(pg_catalog.#>>) '{}' from walk w where pg_catalog.jsonb_typeof(w.j) in ('string', 'number')
     )
     select v.i, v.path, pg_catalog.count(*) as n, %s
     from vals v group by v.i, v.path$q$,
    pii_internal.discovery_sample_sql(tbl, sample_rows, pg_catalog.string_agg(pg_catalog.format('t.%I', c.attname), ', ' order by c.attnum)),
    pg_catalog.string_agg(case when c.typname in ('json', 'jsonb') then pg_catalog.format('(%s, null::text, s.%I::jsonb)', c.attnum, c.attname)
                               else pg_catalog.format('(%s, s.%I::text, null::jsonb)', c.attnum, c.attname) end, ', ' order by c.attnum),
    (select pg_catalog.string_agg(pg_catalog.format('pg_catalog.count(*) filter (where v.val operator(pg_catalog.~*) %L) as %I', r.pattern, r.key), ', ')
     from pii_internal.discovery_value_rules() r))
  from pii_internal.discovery_columns(tbl) c
  where c.sampled
  having pg_catalog.count(*) > 0
$$;
comment on function pii_internal.discovery_sample_query(regclass, integer) is 'Internal. Step of pii.discover: the sampling query of a table (counts of sampled values matching each value rule, per column and jsonb key path); NULL when no column is sampled.';

-- Findings by sampled value and by jsonb key name. flagged: the columns already reported by
-- name (not reported again by value). A failing sample query is reported by its SQLSTATE only.
create or replace function pii_internal.discovery_by_value(tbl regclass, sample_sql text, flagged text[])
returns table (column_name text, reason text, suggestion text)
language plpgsql volatile
set search_path = pg_catalog, pii, pg_temp
as $$
declare
  col record;
  rec record;
  vr record;
  nr record;
  counts jsonb;
begin
  begin
    for rec in execute sample_sql loop
      select a.attname, r.erase, r.mask, r.category into col
      from pg_catalog.pg_attribute a left join pii.columns r on r.relid = a.attrelid and r.attnum = a.attnum
      where a.attrelid = tbl and a.attnum = rec.i;
      counts := pg_catalog.to_jsonb(rec);
      -- A jsonb key this column's rule already removes is fine.
      if rec.path is not null and (pii_internal.parse_strategy(col.erase)).name = 'jsonb_remove'
         and pg_catalog.split_part(rec.path, '.', 1) = any (pii_internal.strategy_keys((pii_internal.parse_strategy(col.erase)).argument)) then
        continue;
      end if;
      if rec.path is null and ((pii_internal.parse_strategy(col.erase)).name = 'jsonb_remove' or col.attname::text = any (flagged)) then
        continue;  -- already reported by name, or a jsonb rule (its keys are checked)
      end if;
      for vr in select * from pii_internal.discovery_value_rules() r loop
        if (counts ->> vr.key)::bigint > 0 and (counts ->> vr.key)::numeric / rec.n >= vr.min_share then
          column_name := col.attname;
          reason := pg_catalog.format('%s%s of %s sampled values %s %s%s',
                      case when rec.path is not null then pg_catalog.format('jsonb key %s: ', pii_internal.discovery_key_label(tbl, rec.path)) else '' end,
                      counts ->> vr.key, rec.n,
                      case when vr.key = 'email' then 'contain' else 'look like' end, vr.rule,
                      case when col.erase = 'keep' and col.mask = 'clear' then ' (the column is classified as not PII)' else '' end);
          if rec.path is not null then
            -- The key name may say more than the value pattern.
            select x.category into nr from pii_internal.discovery_name_rules() x
            where pii_internal.discovery_normalize(pg_catalog.split_part(rec.path, '.', -1)) ~ x.pattern limit 1;
            suggestion := pii_internal.discovery_key_suggestion(tbl, col.attname, coalesce(nr.category, vr.category), vr.mask, rec.path);
          else
            suggestion := pii_internal.discovery_suggestion(tbl, col.attname, vr.category, vr.mask);
          end if;
          return next;
          exit;  -- one value finding per column or key
        end if;
      end loop;
      -- A jsonb key whose name says PII, whatever its sampled values.
      if rec.path is not null then
        for nr in select * from pii_internal.discovery_name_rules() x
                  where pii_internal.discovery_normalize(pg_catalog.split_part(rec.path, '.', -1)) ~ x.pattern limit 1
        loop
          if not exists (select from pii_internal.discovery_value_rules() r
                         where (counts ->> r.key)::bigint > 0 and (counts ->> r.key)::numeric / rec.n >= r.min_share) then
            column_name := col.attname;
            reason := pg_catalog.format('jsonb key %s: name suggests %s', pii_internal.discovery_key_label(tbl, rec.path), nr.rule);
            suggestion := pii_internal.discovery_key_suggestion(tbl, col.attname, nr.category, nr.mask, rec.path);
            return next;
          end if;
        end loop;
      end if;
    end loop;
  exception when others then
    -- Never echo a value: the SQLSTATE says enough.
    column_name := null;
    reason := pg_catalog.format('not sampled: the sample query failed (SQLSTATE %s)', sqlstate);
    suggestion := null;
    return next;
  end;
end
$$;
comment on function pii_internal.discovery_by_value(regclass, text, text[]) is 'Internal. Step of pii.discover: columns and jsonb keys whose sampled values (or key names) suggest PII, from one sampling query.';

create or replace function pii.discover(sample_rows integer default 1000)
returns table (table_name text, column_name text, reason text, suggestion text)
language plpgsql volatile security definer
set search_path = pg_catalog, pii, pg_temp
-- The sample queries are tiny, but the recursive jsonb walk's estimates are huge:
-- compiling them with JIT would take longer than running them.
set jit = off
as $$
declare
  tbl record;
  sample_sql text;
  flagged text[];
begin
  if sample_rows is null then
    raise exception 'sample_rows must not be NULL' using errcode = '22004';
  end if;
  if sample_rows < 1 or sample_rows > 100000 then
    raise exception 'sample_rows must be between 1 and 100000, not %', sample_rows using errcode = '22023';
  end if;

  for tbl in select * from pii_internal.discovery_tables() loop
    flagged := '{}';
    for column_name, reason, suggestion in select * from pii_internal.discovery_by_name(tbl.relid) loop
      table_name := tbl.name;
      flagged := flagged || column_name;
      return next;
    end loop;
    table_name := tbl.name;
    if not tbl.readable then
      column_name := null;
      reason := 'not sampled: Lethe''s owner role cannot read this table';
      suggestion := pg_catalog.format('grant select on %s to %I;', tbl.name, current_user);
      return next;
      continue;
    end if;
    sample_sql := pii_internal.discovery_sample_query(tbl.relid, sample_rows);
    continue when sample_sql is null;
    return query select tbl.name, f.column_name, f.reason, f.suggestion from pii_internal.discovery_by_value(tbl.relid, sample_sql, flagged) f;
  end loop;
end
$$;
comment on function pii.discover(integer) is
$$Lists columns of the application's tables (every schema but pii, masked, graphile_worker and the catalogs)
that look like personal data but have no rule: by name (email, phone, first_name, birth…, ip, address, zip,
iban, ssn, passport … in English, German, French, Spanish, Italian, Portuguese, Dutch), by type (inet), by
sampled values (email, phone, IBAN, card, IPv4/IPv6) and by keys of jsonb documents; also columns classified
as not PII whose values look like PII, and jsonb keys a jsonb_remove rule leaves behind. Each finding says why
and suggests a pii.register_column call. Reads at most sample_rows rows per table with TABLESAMPLE SYSTEM
(LIMIT for tables of a few pages) and never returns or logs a sampled value; jsonb keys (which are data) are named
only to a login that may read the table, others see #<keyed hash>.
Example: select * from pii.discover();  select * from pii.discover(sample_rows => 200);$$;

revoke execute on all functions in schema pii, pii_internal from public;
grant execute on function pii.discover(integer) to pii_admin, pii_auditor;
