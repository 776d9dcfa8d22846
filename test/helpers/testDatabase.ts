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

/**
 * Roles are the cluster's: masked readers that other test files make (some with CREATEROLE or
 * pg_read_all_data, on purpose) are this database's readers too while they may connect, and
 * pii.security_lint (so `lethe doctor`) reports them. A test that expects a clean bill of
 * health closes its database to every login but the ones it names (the admin is superuser).
 */
export function closeToOtherLogins(dbName: string, logins: readonly string[] = []): Promise<void> {
  const grant = logins.length
    ? `; grant connect on database ${pg.escapeIdentifier(dbName)} to ${logins.map((l) => pg.escapeIdentifier(l)).join(', ')}`
    : '';
  return admin(`revoke connect on database ${pg.escapeIdentifier(dbName)} from public${grant}`);
}

/** Runs one statement as the server's admin role, on the maintenance database. */
export function admin(sql: string): Promise<void> {
  return runSql(inject('adminUrl'), sql);
}
