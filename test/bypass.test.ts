// Bypass suite (F13, F20): a real LOGIN role made a masked reader with
// pii.grant_masked_reader, connected over TCP with its password, tries to reach raw PII.
// Each attempt is one test, and each must fail: permission denied, or only masked/NULL
// values. Raw values of the fixture (user7@example.com, Last7, +44 7700 900007, …) must
// never appear in a result, an error message, a notice or a plan.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { admin, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let reader: pg.Client;
let bystander: pg.Client;
const password = randomBytes(12).toString('hex');
let role = '';
const notices: string[] = [];
let secretHex = '';

// Values that must never reach the reader.
const RAW = [
  /user\d+@example\.com/,
  /Last\d+/,
  /First\d+/,
  /\+44 7700 900\d{3}/,
  /called about order/,
  /High Street/,
  /00000000-0000-4000-8000-0000000000\d\d/,
];

function expectNoRaw(text: string): void {
  for (const re of RAW) expect(text, `raw value ${re} leaked`).not.toMatch(re);
  if (secretHex) expect(text).not.toContain(secretHex.slice(0, 16));
}

async function denied(sql: string, code = '42501'): Promise<string> {
  const err = await reader.query(sql).then(
    () => undefined,
    (e: { code?: string; message?: string }) => e,
  );
  expect(err, `"${sql}" should have failed`).toBeDefined();
  expect(err?.code).toBe(code);
  expectNoRaw(String(err?.message));
  return String(err?.message);
}

beforeAll(async () => {
  db = await createTestDatabase('bypass');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  role = `${db.name}_support`;
  await db.query(`create role ${role} login password '${password}'`);
  await db.query(`select pii.grant_masked_reader($1)`, [role]);
  // As many applications do: everyone may look up names in the application's schema.
  // Then every refusal below is the table's own privilege check, not the schema's.
  await db.query(`grant usage on schema app to public`);
  await db.query(`
    analyze;
    create statistics app.customers_email_stats (mcv) on email, last_name from app.customers;
    analyze app.customers;
    select lo_from_bytea(424242, convert_to('user1@example.com', 'UTF8'));
    create extension if not exists pg_stat_statements;`);
  secretHex = (await db.query(`select encode(inner_key, 'hex') as k from pii_internal.secret`)).rows[0].k;

  reader = new pg.Client({ connectionString: connectAs(db.url, role, password), application_name: 'bypass-reader' });
  reader.on('notice', (n) => notices.push(`${n.message ?? ''} ${n.detail ?? ''} ${n.where ?? ''}`));
  await reader.connect();
  // Another session that has just run a query with raw PII in its text.
  bystander = new pg.Client({ connectionString: db.url, application_name: 'bypass-bystander' });
  await bystander.connect();
  await bystander.query(`select count(*) from app.customers where email = 'user7@example.com' and last_name = 'Last7'`);
});

afterAll(async () => {
  await reader?.end().catch(() => undefined);
  await bystander?.end().catch(() => undefined);
  if (db) {
    if (role) await db.query(`drop owned by ${role}`).catch(() => undefined);
    await db.drop();
  }
  if (role) await admin(`drop role if exists ${role}`);
});

describe('the masked reader', () => {
  it('is a real LOGIN role over TCP, not a superuser, a member of pii_masked_reader only', async () => {
    const { rows } = await reader.query(`
      select session_user::text as u, r.rolsuper, r.rolbypassrls, inet_client_addr() is not null as tcp,
             (select array_agg(g.rolname::text order by 1) from pg_auth_members m join pg_roles g on g.oid = m.roleid where m.member = r.oid) as groups
      from pg_roles r where r.rolname = session_user`);
    expect(rows[0]).toEqual({
      u: role,
      rolsuper: false,
      rolbypassrls: false,
      tcp: true,
      groups: ['pii_masked_reader'],
    });
  });

  it('reads the masked views (positive control): masked values only', async () => {
    const { rows } = await reader.query(`select * from masked.customers order by id`);
    expect(rows).toHaveLength(10);
    expect(rows[6].email).toBe('u***@example.com');
    expectNoRaw(JSON.stringify(rows));
    const all = await reader.query(`select * from masked.events, masked.orders, masked.order_items limit 50`);
    expectNoRaw(JSON.stringify(all.rows));
  });
});

describe('bypass attempts (each must fail)', () => {
  it('01 SELECT from a base table', async () => {
    await denied(`select * from app.customers`);
  });

  it('02 SELECT a single raw column of a base table', async () => {
    await denied(`select email from app.customers where id = 7`);
  });

  it('03 COPY a base table TO STDOUT', async () => {
    await denied(`copy app.customers to stdout`);
  });

  it('04 COPY (SELECT …) from a base table', async () => {
    await denied(`copy (select email from app.customers) to stdout`);
  });

  it('05 TABLESAMPLE / cursor over a base table', async () => {
    await denied(`select * from app.customers tablesample bernoulli (100)`);
    await reader.query('begin');
    try {
      await denied(`declare c cursor for select email from app.customers`);
    } finally {
      await reader.query('rollback');
    }
  });

  it('06 partitions of a registered table directly', async () => {
    await denied(`select payload from app.events_2026_09`);
  });

  it('07 pg_stats after ANALYZE: no rows for tables the reader cannot read', async () => {
    const { rows } = await reader.query(`select * from pg_stats where schemaname = 'app'`);
    expect(rows).toEqual([]);
  });

  it('08 pg_statistic directly (most common values live there)', async () => {
    await denied(`select stavalues1::text from pg_statistic`);
  });

  it('09 extended statistics (pg_stats_ext MCV lists)', async () => {
    const { rows } = await reader.query(
      `select most_common_vals::text as v from pg_stats_ext where schemaname = 'app'`,
    );
    expect(rows).toEqual([]);
    await denied(`select stxdmcv::text from pg_statistic_ext_data`);
  });

  it('10 the install key (pii_internal.secret) and pii_internal.hmac', async () => {
    await denied(`select * from pii_internal.secret`);
    await denied(`select pii_internal.hmac('user7@example.com')`);
  });

  it('11 the hash oracle: pii.mask_hash on a guess', async () => {
    await denied(`select pii.mask_hash('user7@example.com')`);
  });

  it('12 SECURITY DEFINER functions: erase_subjects, resolve_subjects, register_column, apply_masking, grant_role', async () => {
    await denied(`select * from pii.erase_subjects(array['7'])`);
    await denied(`select * from pii_internal.resolve_subjects(array['7'])`);
    await denied(`select pii.register_column('app.customers', 'email', 'null', 'clear')`);
    await denied(`select * from pii.apply_masking()`);
    await denied(`select pii.grant_role('pii_admin', current_user)`);
    await denied(`select * from pii.discover()`);
  });

  it('13 no Lethe function or table is reachable (catalog-wide check)', async () => {
    const { rows } = await reader.query(`
      select p.oid::regprocedure::text as f from pg_proc p
      where p.pronamespace = 'pii'::regnamespace and has_function_privilege(p.oid, 'execute')
      union all
      select c.oid::regclass::text from pg_class c
      where c.relnamespace = 'pii'::regnamespace and c.relkind in ('r', 'v', 'p', 'm', 'S')
        and has_table_privilege(c.oid, 'select, insert, update, delete')`);
    expect(rows).toEqual([]);
    expect((await reader.query(`select has_schema_privilege('pii', 'usage') as u`)).rows[0].u).toBe(false);
  });

  it('14 the audit trail, requests, request items, tombstones and CSV staging', async () => {
    for (const t of [
      'pii.audit',
      'pii.requests',
      'pii_internal.request_items',
      'pii_internal.tombstones',
      'pii.import_rows',
      'pii.masked_views',
    ]) {
      await denied(`select * from ${t}`);
    }
  });

  it('15 creating objects in schema public (PostgreSQL 15+) or in app/masked', async () => {
    const major = Number(
      (await reader.query(`select current_setting('server_version_num')::int / 10000 as v`)).rows[0].v,
    );
    if (major >= 15) await denied(`create table public.x (a int)`);
    await denied(`create function masked.f() returns int language sql as 'select 1'`);
    await denied(`create table app.x (a int)`);
  });

  it('16 search_path and operator shadowing: a pg_temp operator and functions named like the masks change nothing', async () => {
    await reader.query(`
      create function pg_temp.cat(a text, b text) returns text language sql as 'select ''LEAK'' || a || b';
      create operator pg_temp.|| (leftarg = text, rightarg = text, function = pg_temp.cat);
      create function pg_temp.left(t text, n int) returns text language sql as 'select t';
      create function pg_temp.split_part(a text, b text, n int) returns text language sql as 'select a'`);
    await reader.query(`set search_path = pg_temp, masked, public, pg_catalog`);
    try {
      const { rows } = await reader.query(`select email, first_name from customers where id = 7`);
      expect(rows[0]).toEqual({ email: 'u***@example.com', first_name: 'F***' });
    } finally {
      await reader.query(`reset search_path`);
    }
  });

  it('17 a TEMP view or table over a base table', async () => {
    await reader.query(`create temp view v_raw as select email from app.customers`);
    await denied(`select * from v_raw`);
    await denied(`create temp table t_raw as select * from app.customers`);
  });

  it('18 own functions over a base table (SECURITY DEFINER runs as the reader)', async () => {
    await reader.query(
      `create function pg_temp.grab() returns setof text language sql security definer as 'select email from app.customers'`,
    );
    await denied(`select * from pg_temp.grab()`);
  });

  it('19 error messages echoing values: casts of masked columns show masked values only', async () => {
    const msg1 = await denied(`select email::int from masked.customers where id = 7`, '22P02');
    expect(msg1).toContain('u***@example.com');
    await denied(`select phone::int from masked.customers where id = 7`, '22P02');
    await denied(`select (first_name || last_name)::date from masked.customers`, '22007').catch(async () => {
      // NULL || … is NULL: no error is also no leak.
      expectNoRaw(
        JSON.stringify((await reader.query(`select (first_name || last_name) as x from masked.customers`)).rows),
      );
    });
    await denied(`select email::int from app.customers`);
  });

  it('20 EXPLAIN (VERBOSE, ANALYZE) of a masked view shows no raw value and no key', async () => {
    const { rows } = await reader.query(
      `explain (analyze, verbose, costs off) select * from masked.customers where id = 7`,
    );
    const text = rows.map((r) => r['QUERY PLAN']).join('\n');
    expect(text).toMatch(/Output:/);
    expectNoRaw(text);
    await denied(`explain select * from app.customers`);
  });

  it('21 the plan tree dumped to the client (debug_print_plan at log level)', async () => {
    notices.length = 0;
    await reader.query(`set client_min_messages = log`);
    try {
      await reader.query(`set debug_print_plan = on`).catch(() => undefined);
      await reader.query(`select * from masked.customers where id = 7`);
    } finally {
      await reader.query(`reset debug_print_plan`).catch(() => undefined);
      await reader.query(`reset client_min_messages`);
    }
    expectNoRaw(notices.join('\n'));
  });

  it('22 large objects: lo_get of a PII blob, lo_import of server files, pg_largeobject', async () => {
    await denied(`select lo_get(424242)`);
    await denied(`select lo_import('/etc/passwd')`);
    await denied(`select * from pg_largeobject`);
  });

  it("23 server files: pg_read_file, pg_read_binary_file of a table's data file, COPY … PROGRAM", async () => {
    await denied(`select pg_read_file('postgresql.conf')`);
    await denied(`select pg_read_binary_file(pg_relation_filepath('app.customers'))`);
    await denied(`copy (select 1) to program 'cat'`);
    await denied(`create temp table f (l text); copy f from program 'cat /etc/hostname'`).catch(() => undefined);
  });

  it("24 pg_stat_activity: other sessions' query text is hidden", async () => {
    const { rows } = await reader.query(
      `select query from pg_stat_activity where application_name = 'bypass-bystander'`,
    );
    expect(rows).toEqual([{ query: '<insufficient privilege>' }]);
  });

  it("25 pg_stat_statements: other users' statements are hidden", async () => {
    const has = (await reader.query(`select to_regclass('pg_stat_statements') is not null as ok`)).rows[0].ok;
    if (!has) return; // not installed on this server: nothing to read
    // Installed but not preloaded (55000): the view can be read by nobody.
    const read = await reader
      .query(
        `select query from pg_stat_statements where userid <> (select oid from pg_roles where rolname = current_user)`,
      )
      .catch((e: { code?: string }) => (e.code === '55000' ? null : Promise.reject(e)));
    if (!read) return;
    const { rows } = read;
    for (const r of rows) expect(r.query).toBe('<insufficient privilege>');
    expectNoRaw(JSON.stringify(rows));
  });

  it('26 SET ROLE / SET SESSION AUTHORIZATION to a privileged role', async () => {
    for (const target of ['pii_admin', 'pii_operator', 'pii_dispatcher', 'pii_auditor', 'postgres']) {
      await denied(`set role ${target}`);
    }
    await denied(`set session authorization postgres`);
  });

  it('27 granting oneself more: GRANT, ALTER ROLE, pii.grant_role', async () => {
    await denied(`grant pii_admin to current_user`);
    await denied(`alter role current_user superuser`);
    await denied(`alter role current_user bypassrls`);
  });

  it('28 prepared statements: over a base table refused, over a view masked', async () => {
    // PREPARE checks nothing yet; EXECUTE does.
    await reader.query(`prepare raw (bigint) as select email from app.customers where id = $1`);
    await denied(`execute raw(7)`);
    await reader.query(`prepare m (bigint) as select email from masked.customers where id = $1`);
    const { rows } = await reader.query(`execute m(7)`);
    expect(rows).toEqual([{ email: 'u***@example.com' }]);
    // Another session's prepared statements (with PII in their text) are not visible here.
    await bystander.query(`prepare peek as select * from app.customers where email = 'user7@example.com'`);
    const others = await reader.query(
      `select count(*)::int as n from pg_prepared_statements where name not in ('raw', 'm')`,
    );
    expect(others.rows[0].n).toBe(0);
  });

  it('29 a leaky function in WHERE (RAISE NOTICE, cost 0.0001) sees masked values only', async () => {
    await reader.query(`
      create function pg_temp.leak(v text) returns boolean language plpgsql cost 0.0001 as
      $$ begin raise notice 'leak: %', v; return true; end $$`);
    notices.length = 0;
    await reader.query(
      `select id from masked.customers where pg_temp.leak(email) and pg_temp.leak(last_name) and pg_temp.leak(first_name) and pg_temp.leak(phone) and pg_temp.leak(external_ref::text)`,
    );
    await reader.query(
      `select o.id from masked.orders o join masked.customers c on c.id = o.customer_id where pg_temp.leak(o.shipping_address) and pg_temp.leak(o.shipping_name) and pg_temp.leak(c.notes)`,
    );
    await reader.query(`select 1 from masked.events e where pg_temp.leak(e.payload::text)`);
    expect(notices.some((n) => n.includes('leak: u***@example.com'))).toBe(true);
    expectNoRaw(notices.join('\n'));
  });

  it('30 a leaky function as a join qual or in an ORDER BY / aggregate sees masked values only', async () => {
    notices.length = 0;
    await reader.query(
      `select count(*) from masked.customers c join masked.orders o on pg_temp.leak(c.email || o.shipping_name) and o.customer_id = c.id`,
    );
    await reader.query(`select string_agg(email, ',' order by pg_temp.leak(phone)::text) from masked.customers`);
    expectNoRaw(notices.join('\n'));
  });

  it('31 changing or replacing a masked view (only its owner may)', async () => {
    await denied(`create or replace view masked.customers as select * from app.customers`);
    await denied(`alter view masked.customers rename to c2`);
    await denied(`drop view masked.customers`);
    await denied(`insert into masked.customers (id) values (99)`);
    await denied(`update masked.customers set status = 'X'`);
  });

  it('32 the view definition reveals rules, never the key', async () => {
    const { rows } = await reader.query(`select pg_get_viewdef('masked.customers'::regclass) as d`);
    expect(rows[0].d).toMatch(/pii_internal\.secret/);
    expectNoRaw(rows[0].d);
  });

  it('33 triggers, rules or child tables on base tables (all need ownership)', async () => {
    await denied(`create temp table kid () inherits (app.customers)`);
    await denied(
      `create trigger t after insert on app.customers for each row execute function pii_internal.guard_rows()`,
    );
    await denied(`create rule r as on insert to app.customers do also nothing`);
  });

  it('35 DDL naming a registered table fails on ownership and leaves the masked view alone', async () => {
    const before = (await db.query(`select 'masked.customers'::regclass::oid as o`)).rows[0].o;
    const msg = await denied(`alter table app.customers drop column email`);
    expect(msg).toMatch(/must be owner/);
    await denied(`drop table app.customers`);
    expect((await db.query(`select 'masked.customers'::regclass::oid as o`)).rows[0].o).toBe(before);
  });

  it('34 untrusted extensions and event triggers (dblink to loop back as another user, …)', async () => {
    await denied(`create extension dblink`).catch(async () => {
      // Not installed on this server: the available-extension check fails first.
      const e = await reader.query(`create extension dblink`).catch((x: { code?: string }) => x);
      expect(['42501', '0A000', '58P01']).toContain((e as { code?: string }).code);
    });
    await denied(`create event trigger e on ddl_command_start execute function pii_internal.masking_ddl_start()`);
  });
});
