// `lethe migrate` into an application's existing database that already uses a migration tool of its own.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { migrate, MIGRATIONS_TABLE } from '../src/db/migrate.js';
import { CODE_TABLE, readCode, readMigrations } from '../src/db/sqlFiles.js';
import { admin } from './helpers/testDatabase.js';

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
  const migrations = readMigrations();
  const code = readCode();

  it('applies every versioned migration and every code file, recording each with its sha256', async () => {
    const result = await migrate(url);
    expect(result).toEqual({ applied: migrations.map((m) => m.name), code: code.map((f) => f.name) });

    const { rows } = await client.query(`select version, name, sha256 from ${MIGRATIONS_TABLE} order by version`);
    expect(rows).toEqual(migrations.map((m) => ({ version: m.version, name: m.name, sha256: m.sha256 })));
    const recorded = await client.query(`select name, sha256 from ${CODE_TABLE} order by name`);
    expect(recorded.rows).toEqual(code.map((f) => ({ name: f.name, sha256: f.sha256 })));
  });

  it("leaves the application's own migrations table alone", async () => {
    const { rows } = await client.query('select version from public.schema_migrations');
    expect(rows).toEqual([{ version: '20240101120000' }]);
  });

  it("installs graphile-worker's schema", async () => {
    const { rows } = await client.query(`select count(*)::int as n from graphile_worker.migrations`);
    expect(rows[0].n).toBeGreaterThan(0);
  });

  it('is idempotent: a second run applies nothing', async () => {
    const before = await client.query(`select version, applied_at from ${MIGRATIONS_TABLE} order by version`);
    const codeBefore = await client.query(`select name, applied_at from ${CODE_TABLE} order by name`);
    expect(await migrate(url)).toEqual({ applied: [], code: [] });
    expect((await client.query(`select version, applied_at from ${MIGRATIONS_TABLE} order by version`)).rows).toEqual(
      before.rows,
    );
    expect((await client.query(`select name, applied_at from ${CODE_TABLE} order by name`)).rows).toEqual(
      codeBefore.rows,
    );
  });

  it('re-applies all code files when one changed', async () => {
    await client.query(`update ${CODE_TABLE} set sha256 = 'stale' where name = $1`, [code[0]!.name]);
    expect(await migrate(url)).toEqual({ applied: [], code: code.map((f) => f.name) });
    expect(await migrate(url)).toEqual({ applied: [], code: [] });
  });

  it('leaves no session behind (a template with sessions cannot be cloned)', async () => {
    const { rows } = await client.query(
      'select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()',
    );
    expect(rows[0].n).toBe(0);
  });
});
