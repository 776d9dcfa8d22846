// `lethe migrate` into an application's existing database that already uses dbmate itself.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { admin } from './helpers/testDatabase.js';
import { LETHE_MIGRATIONS_TABLE, migrate, packageRoot } from '../src/db/migrate.js';

const adminUrl = inject('adminUrl');
const dbName = `lethe_migrate_${Math.random().toString(36).slice(2, 10)}`;
const url = withDatabaseName(adminUrl, dbName);
let client: pg.Client;

beforeAll(async () => {
  // A brand new database, not the template: this is what a user's application database looks like.
  await admin(`create database ${dbName}`);
  client = new pg.Client(url);
  await client.connect();
  await client.query(`
    create table public.schema_migrations (version varchar(128) primary key);
    insert into public.schema_migrations values ('20240101120000');
    create table public.customers (id bigint primary key, email text not null);`);
});

afterAll(async () => {
  await client?.end();
  await admin(`drop database if exists ${dbName} with (force)`);
});

describe('migrate', () => {
  const files = readdirSync(join(packageRoot(), 'db', 'migrations'))
    .filter((f) => f.endsWith('.sql'))
    .sort();

  it('applies every Lethe migration and records them in its own table', async () => {
    const { applied } = await migrate(url);
    expect(applied).toEqual(files);

    const { rows } = await client.query(`select version from ${LETHE_MIGRATIONS_TABLE} order by version`);
    expect(rows.map((r) => r.version)).toEqual(files.map((f) => f.split('_')[0]));
  });

  it("leaves the application's own dbmate table alone", async () => {
    const { rows } = await client.query('select version from public.schema_migrations');
    expect(rows).toEqual([{ version: '20240101120000' }]);
  });

  it("installs graphile-worker's schema", async () => {
    const { rows } = await client.query(`select count(*)::int as n from graphile_worker.migrations`);
    expect(rows[0].n).toBeGreaterThan(0);
  });

  it('is idempotent: a second run applies nothing', async () => {
    const before = await client.query(`select version from ${LETHE_MIGRATIONS_TABLE} order by version`);
    expect(await migrate(url)).toEqual({ applied: [] });
    const after = await client.query(`select version from ${LETHE_MIGRATIONS_TABLE} order by version`);
    expect(after.rows).toEqual(before.rows);
  });

  it('leaves no session behind (a template with sessions cannot be cloned)', async () => {
    const { rows } = await client.query(
      'select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
    );
    expect(rows[0].n).toBe(0);
  });
});
