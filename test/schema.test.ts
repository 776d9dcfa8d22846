// The installed schema must match the committed snapshot db/schema.sql, so every change
// to the SQL surface shows up in review as a diff of that file.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { packageRoot } from '../src/db/migrate.js';
import { dumpSchema, snapshotMajor } from '../src/db/schemaSnapshot.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const snapshotPath = join(packageRoot(), 'db', 'schema.sql');
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('schema');
});
afterAll(() => db?.drop());

it('db/schema.sql matches the installed schema', async (ctx) => {
  const client = await db.pool.connect();
  let actual: string;
  try {
    actual = await dumpSchema(client);
  } finally {
    client.release();
  }
  if (!existsSync(snapshotPath)) {
    expect.fail('db/schema.sql is missing: run npm run db:dump-schema and commit it');
  }
  const expected = readFileSync(snapshotPath, 'utf8');
  // Catalog output (deparsed views, privilege names) differs between PostgreSQL majors;
  // the snapshot is taken on the embedded server, so compare only like with like.
  if (snapshotMajor(expected) !== snapshotMajor(actual)) {
    ctx.skip(
      `db/schema.sql was dumped on PostgreSQL ${snapshotMajor(expected)}, this server is ${snapshotMajor(actual)}`,
    );
  }
  expect(
    actual,
    'the installed schema drifted from db/schema.sql: run npm run db:dump-schema and commit the result',
  ).toBe(expected);
});

it('every function of schema pii explains itself in \\df+: a COMMENT with an example', async () => {
  const { rows } = await db.query<{ fn: string }>(
    `select p.oid::regprocedure::text as fn from pg_catalog.pg_proc p
     where p.pronamespace = 'pii'::regnamespace
       and coalesce(pg_catalog.obj_description(p.oid, 'pg_proc'), '') !~ 'Example'
     order by 1`,
  );
  expect(rows.map((r) => r.fn)).toEqual([]);
  const { rows: counted } = await db.query(
    `select count(*)::int as n from pg_catalog.pg_proc where pronamespace = 'pii'::regnamespace`,
  );
  expect(counted[0].n).toBeGreaterThan(50);
});
