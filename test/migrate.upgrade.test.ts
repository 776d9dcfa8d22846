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

/** What users and Lethe made: registry, requests, tombstones, audit, application data, grants. */
async function userState(client: pg.Client) {
  const q = async (sql: string) => (await client.query(sql)).rows;
  return {
    registered: await q(`select * from pii.registered_columns order by table_name, column_name`),
    tables: await q(`select * from pii.registered_tables order by table_name`),
    requests: await q(
      `select id, status, total, matched, erased, failed, residual_count from pii.requests order by id`,
    ),
    items: await q(`select request_id, encode(subject_hash, 'hex') as h, status from pii.request_items order by 1, 2`),
    tombstones: await q(
      `select encode(subject_hash, 'hex') as h, pseudonym, request_id, erased_at from pii.tombstones order by 1`,
    ),
    audit: await q(`select id, action, request_id, details from pii.audit order by id`),
    customers: await q(`select * from app.customers order by id`),
    orders: await q(`select * from app.orders order by id`),
    guards: await q(`select tgname, tgrelid::regclass::text as tbl, tgfoid::regprocedure::text as fn, tgenabled
                     from pg_trigger where tgrelid::regclass::text like 'app.%' order by 1, 2`),
    secret: await q(`select md5(inner_key::text || outer_key::text) as k from pii.secret`),
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
    const before = await userState(client);
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
    const after = await userState(client);
    const existed = new Set(before.grants.map((g) => g.fn as string));
    expect({ ...after, grants: after.grants.filter((g) => existed.has(g.fn as string)) }).toEqual({
      ...before,
      guards: before.guards.map((g) => (/^lethe_guard_/.test(g.tgname) ? { ...g, tgenabled: 'A' } : g)),
    });
    expect((await client.query(`select status from pii.requests where id = $1`, [queued])).rows).toEqual([
      { status: 'queued' },
    ]);
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
                            where p.pronamespace = 'pii_internal'::regnamespace and p.proname like 'deputy\\_%'`)
      ).rows,
    ).toEqual([
      {
        owner: (
          await client.query(`select relowner::regrole::text as o from pg_class where oid = 'app.orders'::regclass`)
        ).rows[0].o,
      },
    ]);
    expect((await client.query(`select email from app.customers where id = 5`)).rows).toEqual([{ email: null }]);
    // 0015: erasure_completed jobs are off until opted in; columns of unregistered tables
    // can be classified as not PII.
    expect((await client.query(`select erasure_completed_jobs as on from pii.settings`)).rows).toEqual([{ on: false }]);
    await client.query(`create table app.category (id int primary key, name text);
                        select pii.mark_not_pii('app.category', 'name');`);
    expect((await client.query(`select relid::text, attnum from pii.not_pii_columns`)).rows).toEqual([
      { relid: 'app.category', attnum: 2 },
    ]);
    await Promise.all([client.end(), fresh.end()]);
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
