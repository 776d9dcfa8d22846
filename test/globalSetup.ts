// One PostgreSQL per test run: DATABASE_URL's server if set, else an embedded cluster.
// Lethe is migrated once into a template database; each test file clones it
// (test/helpers/testDatabase.ts), which is much faster than migrating per file.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { startEmbeddedPostgres } from '../src/db/embeddedPostgres.js';
import { migrate } from '../src/db/migrate.js';
import { runSql } from '../src/db/runSql.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser (or CREATEDB + CREATEROLE) URL on the test server, database `postgres`. */
    adminUrl: string;
    /** Database with Lethe migrated into it; clone it, never connect to it. */
    templateDb: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL;
  const cluster = external ? undefined : await startEmbeddedPostgres();
  const adminUrl = external ?? cluster!.url;
  const templateDb = `lethe_template_${randomBytes(4).toString('hex')}`;

  const dropTemplate = () =>
    runSql(adminUrl, `drop database if exists ${pg.escapeIdentifier(templateDb)} with (force)`);
  try {
    await checkServerMajor(adminUrl);
    await runSql(adminUrl, `create database ${pg.escapeIdentifier(templateDb)}`);
    await migrate(withDatabaseName(adminUrl, templateDb));
  } catch (err) {
    if (external) await dropTemplate().catch(() => undefined);
    await cluster?.stop();
    throw err;
  }
  project.provide('adminUrl', adminUrl);
  project.provide('templateDb', templateDb);

  return async () => {
    // An embedded cluster is deleted whole; on someone else's server, clean up after ourselves.
    if (external) await dropTemplate();
    await cluster?.stop();
  };
}

/** LETHE_PG_VERSION (npm run test:matrix) must really pick the server the suite runs on. */
async function checkServerMajor(url: string): Promise<void> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query<{ v: string }>(`select current_setting('server_version') as v`);
    const version = rows[0]!.v;
    process.stdout.write(`lethe tests: PostgreSQL ${version}\n`);
    const wanted = process.env.LETHE_PG_VERSION?.trim();
    if (wanted && !process.env.DATABASE_URL && version.split('.')[0] !== wanted) {
      throw new Error(`LETHE_PG_VERSION=${wanted} but the embedded server is PostgreSQL ${version}`);
    }
  } finally {
    await client.end();
  }
}
