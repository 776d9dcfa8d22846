// Each test file gets its own database, cloned from the migrated template:
//   let db: TestDatabase;
//   beforeAll(async () => { db = await createTestDatabase('erasure'); });
//   afterAll(() => db.drop());
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { inject } from 'vitest';
import { withDatabaseName } from '../../src/db/databaseUrl.js';
import { runSql } from '../../src/db/runSql.js';

export interface TestDatabase {
  name: string;
  /** Connects as the admin (superuser) role to this database. */
  url: string;
  pool: pg.Pool;
  query<R extends pg.QueryResultRow = any>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

export async function createTestDatabase(name?: string): Promise<TestDatabase> {
  const adminUrl = inject('adminUrl');
  const template = inject('templateDb');
  const prefix = `lethe_test_${(name ?? '').toLowerCase().replace(/[^a-z0-9_]+/g, '_')}`.slice(0, 50);
  const dbName = `${prefix}_${randomBytes(4).toString('hex')}`;

  // CREATE DATABASE ... TEMPLATE fails while any session is connected to the template
  // (SQLSTATE 55006). Nothing should be, but retry briefly rather than flake.
  for (let attempt = 0; ; attempt++) {
    try {
      await runSql(
        adminUrl,
        `create database ${pg.escapeIdentifier(dbName)} template ${pg.escapeIdentifier(template)}`,
      );
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== '55006' || attempt >= 50) throw err;
      await sleep(100 + Math.random() * 200);
    }
  }

  const url = withDatabaseName(adminUrl, dbName);
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  // drop() terminates sessions with FORCE; an idle client's error must not crash the worker.
  pool.on('error', () => {});
  let dropped: Promise<void> | undefined;
  return {
    name: dbName,
    url,
    pool,
    query: (sql, params) => pool.query(sql, params),
    drop: () =>
      (dropped ??= (async () => {
        await pool.end();
        await runSql(adminUrl, `drop database if exists ${pg.escapeIdentifier(dbName)} with (force)`);
      })()),
  };
}

/** The same server and database, logged in as a LOGIN role the test created. */
export function connectAs(url: string, role: string, password: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(role);
  u.password = encodeURIComponent(password);
  return u.toString();
}

/** Runs one statement as the server's admin role, on the maintenance database. */
export function admin(sql: string): Promise<void> {
  return runSql(inject('adminUrl'), sql);
}
