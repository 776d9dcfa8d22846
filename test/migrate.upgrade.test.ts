// Upgrading a released Lethe: db/releases/<version>.sql.gz is the `lethe sql` script of that
// release, byte for byte. Installed the way a psql user would (one script, no graphile-worker),
// used, then `migrate()`d to HEAD: nothing the users made may change, and the schema must be
// the one a fresh install gets (db/schema.sql).
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { installScript } from '../src/db/installScript.js';
import { migrate, packageRoot } from '../src/db/migrate.js';
import { dumpSchema, snapshotMajor } from '../src/db/schemaSnapshot.js';
import { readMigrations } from '../src/db/sqlFiles.js';
import { admin } from './helpers/testDatabase.js';

const RELEASE = '0.1.0';
const LETHE_SCHEMAS = ['pii', 'pii_internal'];
const adminUrl = inject('adminUrl');
const created: string[] = [];

async function freshDatabase(label: string): Promise<pg.Client> {
  const name = `lethe_upgrade_${label}_${Math.random().toString(36).slice(2, 10)}`;
  await admin(`create database ${name}`);
  created.push(name);
  const client = new pg.Client(withDatabaseName(adminUrl, name));
  client.on('error', () => {}); // the drop at the end terminates it
  await client.connect();
  return client;
}
const urlOf = (client: pg.Client) => withDatabaseName(adminUrl, client.database!);

afterAll(async () => {
  for (const name of created) await admin(`drop database if exists ${name} with (force)`);
});

/**
 * What users and Lethe made: registry, requests, tombstones, audit, application data, grants.
 * internal: the schema of Lethe's internal tables (pii in 0.1.0, pii_internal since 0011).
 */
async function userState(client: pg.Client, internal: 'pii' | 'pii_internal') {
  const q = async (sql: string) => (await client.query(sql)).rows;
  return {
    registered: await q(`select * from pii.registered_columns order by table_name, column_name`),
    tables: await q(`select * from pii.registered_tables order by table_name`),
    requests: await q(
      `select id, status, total, matched, erased, failed, residual_count from pii.requests order by id`,
    ),
    items: await q(
      `select request_id, encode(subject_hash, 'hex') as h, status from ${internal}.request_items order by 1, 2`,
    ),
    tombstones: await q(
      `select encode(subject_hash, 'hex') as h, pseudonym, request_id, erased_at from ${internal}.tombstones order by 1`,
    ),
    audit: await q(`select id, action, request_id, details from pii.audit order by id`),
    customers: await q(`select * from app.customers order by id`),
    orders: await q(`select * from app.orders order by id`),
    guards: await q(`select tgname, tgrelid::regclass::text as tbl, tgfoid::regprocedure::text as fn, tgenabled
                     from pg_trigger where tgrelid::regclass::text like 'app.%' order by 1, 2`),
    secret: await q(`select md5(inner_key::text || outer_key::text) as k from ${internal}.secret`),
    grants: await q(`select r.rolname, p.oid::regprocedure::text as fn
                     from pg_proc p cross join pg_roles r
                     where p.pronamespace = 'pii'::regnamespace and r.rolname like 'pii\\_%'
                       and has_function_privilege(r.oid, p.oid, 'execute') order by 1, 2`),
  };
}

describe(`upgrade from the ${RELEASE} release`, () => {
  it('installs by script, serves requests without graphile-worker, and migrates to HEAD with everything intact', async () => {
    const client = await freshDatabase('release');
    const script = gunzipSync(readFileSync(join(packageRoot(), 'db', 'releases', `${RELEASE}.sql.gz`))).toString(
      'utf8',
    );
    await client.query(script);
    expect((await client.query(`select to_regnamespace('graphile_worker') as s`)).rows).toEqual([{ s: null }]);

    await client.query(`
      create schema app;
      create table app.customers (id bigint primary key, email text, status text not null default 'ACTIVE');
      create table app.orders (id bigint primary key, customer_id bigint not null references app.customers, shipping_name text);
      create index on app.orders (customer_id);
      insert into app.customers select i, 'user' || i || '@example.com' from generate_series(1, 6) i;
      insert into app.orders select i, i, 'Name ' || i from generate_series(1, 6) i;
      select pii.register_subject_table('app.customers', 'id');
      select pii.register_table('app.orders', 'customer_id', 'anonymize');
      select pii.register_column('app.customers', 'email', 'null', 'email');
      select pii.register_column('app.customers', 'status', 'set:DEACTIVATED', 'clear');
      select pii.register_column('app.orders', 'shipping_name', 'pseudonym', 'partial:1,0');
      select * from pii.apply_masking();`);
    // The request path works before any worker ran: recorded and queued, then run in SQL.
    const { rows } = await client.query(`select pii.request_erasure(array['1', '2'], 'upgrade-1') as id`);
    const id = rows[0].id as string;
    while ((await client.query(`select pii.process_request_chunk($1) as n`, [id])).rows[0].n > 0);
    expect((await client.query(`select pii.finish_request($1) as s`, [id])).rows).toEqual([{ s: 'done' }]);
    await client.query(`select * from pii.erase_subjects(array['3'])`);
    const queued = (await client.query(`select pii.request_erasure(array['4']) as id`)).rows[0].id;
    const before = await userState(client, 'pii');
    expect(before.tombstones).toHaveLength(4);
    expect(before.guards).toHaveLength(8); // insert and update guards, on two tables, plus truncate/delete companions

    // What the release recorded, read before the upgrade: the upgrade applies the rest.
    const released = new Set(
      (await client.query(`select name from pii_internal.migrations`)).rows.map((r) => r.name as string),
    );
    const result = await migrate(urlOf(client));
    expect(result.applied).toEqual(
      readMigrations()
        .filter((m) => !released.has(m.name))
        .map((m) => m.name),
    );

    // Grants the release made are all kept (functions added since bring their own); the guards
    // are made again ENABLE ALWAYS (they fire under session_replication_role = replica too).
    // 0014 gives register_table / register_child_table new arguments (the grants move to the
    // new signatures) and each registered join the foreign key backing it.
    const after = await userState(client, 'pii_internal');
    const replaced = new Set([
      'pii.register_table(regclass,name,text,name)',
      'pii.register_child_table(regclass,regclass,name,text,name)',
    ]);
    // Functions that gained an optional kind (migration 0015) keep their grants under the new signature.
    const gainedKind: Record<string, string> = {
      'pii.allow_return(text,text)': 'pii.allow_return(text,text,text)',
      'pii.erase_subjects(text[],text[],text)': 'pii.erase_subjects(text[],text[],text,text)',
      'pii.register_subject_table(regclass,name,name,boolean)':
        'pii.register_subject_table(regclass,name,name,boolean,text)',
      'pii.request_erasure(text[],text,text,text[],text,timestamp with time zone)':
        'pii.request_erasure(text[],text,text,text[],text,timestamp with time zone,text)',
      'pii.request_erasure_from_import(uuid,text,text,text,timestamp with time zone)':
        'pii.request_erasure_from_import(uuid,text,text,text,timestamp with time zone,text)',
      'pii.unregister_subject_table()': 'pii.unregister_subject_table(text)',
      'pii.was_erased(text,text)': 'pii.was_erased(text,text,text)',
    };
    const renamed = (grants: Record<string, unknown>[]) =>
      grants.map((g) => ({ ...g, fn: gainedKind[g.fn as string] ?? g.fn }));
    const existed = new Set(renamed(before.grants).map((g) => g.fn as string));
    expect({
      ...after,
      grants: after.grants.filter((g) => existed.has(g.fn as string)),
      tables: after.tables.map(({ foreign_key: _fk, unenforced_join: _u, shared: _s, kind: _k, ...t }) => t),
    }).toEqual({
      ...before,
      grants: renamed(before.grants).filter((g) => !replaced.has(g.fn as string)),
      guards: before.guards.map((g) => (/^lethe_guard_/.test(g.tgname) ? { ...g, tgenabled: 'A' } : g)),
    });
    expect(after.tables.map((t) => [t.table_name, t.foreign_key, t.unenforced_join, t.shared, t.kind])).toEqual([
      ['app.customers', null, false, 'keep', 'customers'],
      ['app.orders', 'orders_customer_id_fkey', false, 'keep', 'customers'],
    ]);
    expect(after.grants).toContainEqual({
      rolname: 'pii_admin',
      fn: 'pii.register_table(regclass,name,text,name,name,boolean)',
    });
    expect((await client.query(`select status from pii.requests where id = $1`, [queued])).rows).toEqual([
      { status: 'queued' },
    ]);
    // Lethe's internal tables moved to pii_internal (migration 0011) with their rows (above).
    const moved = ['secret', 'tombstones', 'request_items', 'request_residuals'];
    expect(
      (
        await client.query(
          `select t, to_regclass('pii.' || t) is null as gone, to_regclass('pii_internal.' || t) is not null as there
           from unnest($1::text[]) t`,
          [moved],
        )
      ).rows,
    ).toEqual(moved.map((t) => ({ t, gone: true, there: true })));
    // Lethe's own schemas as a fresh install has them (db/schema.sql is such a dump; masked
    // holds this test's views, so it is compared without them).
    const fresh = await freshDatabase('fresh');
    await migrate(urlOf(fresh));
    const withoutAppTriggers = (dump: string) =>
      dump
        .replace(/\n\n-- triggers on other schemas' tables/, '')
        .replace(/\n\ntrigger CREATE TRIGGER [^\n]* ON app\.[^\n]*/g, '');
    expect(withoutAppTriggers(await dumpSchema(client, LETHE_SCHEMAS))).toBe(await dumpSchema(fresh, LETHE_SCHEMAS));
    const snapshot = readFileSync(join(packageRoot(), 'db', 'schema.sql'), 'utf8');
    const installed = await dumpSchema(fresh);
    if (snapshotMajor(snapshot) === snapshotMajor(installed)) expect(installed).toBe(snapshot);
    // Tables registered before deputies existed get their owner's deputy on first use.
    await client.query(`select * from pii.erase_subjects(array['5'])`);
    expect(
      (
        await client.query(`select p.proowner::regrole::text as owner from pg_proc p
                            where p.pronamespace = 'pii_internal'::regnamespace and p.proname ~ '^deputy_[0-9]+$'`)
      ).rows,
    ).toEqual([
      {
        owner: (
          await client.query(`select relowner::regrole::text as o from pg_class where oid = 'app.orders'::regclass`)
        ).rows[0].o,
      },
    ]);
    expect((await client.query(`select email from app.customers where id = 5`)).rows).toEqual([{ email: null }]);
    // 0017: the vault's KEK stays embedded and gets its check value.
    expect(
      (
        await client.query(`select kek is not null as embedded, kek_check = sha256('lethe vault kek check'::bytea || kek) as checked
                            from pii_internal.vault_kek`)
      ).rows,
    ).toEqual([{ embedded: true, checked: true }]);

    // Migration 0015: the release's tombstones, requests and tables are the default kind (the
    // subject table's name), whose hashes are unchanged: old tombstones still answer and guard,
    // and calls without a kind still work; a second kind is independent of them.
    expect(
      (
        await client.query(
          `select distinct kind from pii_internal.tombstones union all select distinct kind from pii.requests`,
        )
      ).rows,
    ).toEqual([{ kind: 'customers' }, { kind: 'customers' }]);
    expect((await client.query(`select erased from pii.was_erased('3')`)).rows).toEqual([{ erased: true }]);
    expect((await client.query(`select erased from pii.was_erased('1', kind => 'customers')`)).rows).toEqual([
      { erased: true },
    ]);
    await client.query(`insert into app.orders values (100, 1, 'Back Again')`);
    expect((await client.query(`select shipping_name from app.orders where id = 100`)).rows[0].shipping_name).toMatch(
      /^anon_/,
    );
    await client.query(`
      create table app.staff (id bigint primary key, email text);
      insert into app.staff values (3, 'staff3@example.com');
      select pii.register_subject_table('app.staff', 'id', kind => 'staff');
      select pii.register_column('app.staff', 'email', 'null');`);
    expect((await client.query(`select erased from pii.was_erased('3', kind => 'staff')`)).rows).toEqual([
      { erased: false },
    ]);
    await client.query(`select * from pii.erase_subjects(array['3'], kind => 'staff')`);
    expect((await client.query(`select email from app.staff`)).rows).toEqual([{ email: null }]);
    expect((await client.query(`select erased from pii.was_erased('3', kind => 'customers')`)).rows).toEqual([
      { erased: true },
    ]);

    // Values 0.1.0 pseudonymised (before 0013's pseudonym key, untagged) are not taken as
    // erased, so verification reports them; pii.reapply_erasure erases those subjects again.
    const residualTables = async () =>
      (await client.query(`select distinct table_name, column_name from pii.verify_erasure($1)`, [id])).rows;
    expect(await residualTables()).toEqual([{ table_name: 'app.orders', column_name: 'shipping_name' }]);
    const legacy = (await client.query(`select shipping_name from app.orders where id = 2`)).rows[0].shipping_name;
    const reapplied = (await client.query(`select table_name, rows_affected from pii.reapply_erasure('customers')`))
      .rows;
    expect(reapplied).toContainEqual({ table_name: 'app.orders', rows_affected: '2' }); // orders 2 and 3 (the scrub above redid 1)
    expect(await residualTables()).toEqual([]);
    const now = (await client.query(`select shipping_name from app.orders where id = 2`)).rows[0].shipping_name;
    expect(now).toMatch(/^anon_[0-9a-f]{32}$/);
    expect(now).not.toBe(legacy);
    expect((await client.query(`select * from pii.reapply_erasure('customers') where rows_affected > 0`)).rows).toEqual(
      [],
    );

    // 0016: erasure_completed jobs are off until opted in; columns of unregistered tables
    // can be classified as not PII.
    expect((await client.query(`select erasure_completed_jobs as on from pii.settings`)).rows).toEqual([{ on: false }]);
    // 0033: the release's default chunk size (5,000) becomes the new one.
    expect((await client.query(`select chunk_size from pii.settings`)).rows).toEqual([{ chunk_size: 25000 }]);
    await client.query(`create table app.category (id int primary key, name text);
                        select pii.mark_not_pii('app.category', 'name');`);
    expect((await client.query(`select relid::text, attnum from pii.not_pii_columns`)).rows).toEqual([
      { relid: 'app.category', attnum: 2 },
    ]);
    await Promise.all([client.end(), fresh.end()]);
  });
});

describe(`tombstones of ${RELEASE} after the upgrade`, () => {
  it('a citext key erased by 0.1.0 in its stored case (Bob@X.example) is still erased: was_erased in any case, and the guard scrubs it back', async () => {
    const client = await freshDatabase('citext');
    const script = gunzipSync(readFileSync(join(packageRoot(), 'db', 'releases', `${RELEASE}.sql.gz`))).toString(
      'utf8',
    );
    await client.query(`create extension if not exists citext`);
    await client.query(script);
    await client.query(`
      create schema app;
      create table app.people (email citext primary key, name text);
      create table app.notes (id bigint primary key, email citext not null references app.people, note text);
      create index on app.notes (email);
      insert into app.people values ('Bob@X.example', 'Bob'), ('Ann@X.example', 'Ann');
      select pii.register_subject_table('app.people', 'email');
      select pii.register_table('app.notes', 'email', 'anonymize');
      select pii.register_column('app.people', 'name', 'null');
      select pii.register_column('app.notes', 'note', 'null');
      select * from pii.erase_subjects(array['Bob@X.example']);`);
    await migrate(urlOf(client));
    expect(
      (
        await client.query(`select (select erased from pii.was_erased('Bob@X.example')) as given, (select erased from pii.was_erased('bob@x.example')) as lower,
                                   (select erased from pii.was_erased('Ann@X.example')) as other`)
      ).rows,
    ).toEqual([{ given: true, lower: true, other: false }]);
    await client.query(`insert into app.notes values (1, 'BOB@x.example', 'Bob is back'), (2, 'Ann@X.example', 'Ann')`);
    expect((await client.query(`select id, note from app.notes order by id`)).rows).toEqual([
      { id: '1', note: null },
      { id: '2', note: 'Ann' },
    ]);
    await client.end();
  });
});

describe('lethe sql (install script of HEAD)', () => {
  it('installs what migrate installs: a later migrate applies nothing', async () => {
    const client = await freshDatabase('script');
    await client.query(installScript('head'));
    expect(await migrate(urlOf(client))).toEqual({ applied: [], code: [] });
    await client.end();
  });

  it('refuses to run into a database where Lethe is installed', async () => {
    const client = await freshDatabase('twice');
    await client.query(installScript('head'));
    await expect(client.query(installScript('head'))).rejects.toThrow(/already installed.*lethe migrate/);
    await client.end();
  });
});

describe('migrate refuses a released migration that changed', () => {
  it('names the file and applies nothing', async () => {
    const client = await freshDatabase('tamper');
    await migrate(urlOf(client));
    const dir = mkdtempSync(join(tmpdir(), 'lethe-migrations-'));
    try {
      cpSync(join(packageRoot(), 'db', 'migrations'), dir, { recursive: true });
      const first = readMigrations()[0]!.name;
      writeFileSync(join(dir, first), readFileSync(join(dir, first), 'utf8') + '\ncreate table pii.sneaky (x int);\n');
      await expect(migrate(urlOf(client), { migrationsDir: dir })).rejects.toThrow(
        new RegExp(`db/migrations/${first} differs .*released migrations are immutable`),
      );
      expect((await client.query(`select to_regclass('pii.sneaky') as t`)).rows).toEqual([{ t: null }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await client.end();
    }
  });
});
