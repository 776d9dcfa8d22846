// Writes db/schema.sql: the schema a fresh `lethe migrate` installs, as dumped by
// src/db/schemaSnapshot.ts. Uses DATABASE_URL's server if set, else an embedded one.
// `npm run db:dump-schema`, then commit db/schema.sql.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { withDatabase, withDatabaseName } from '../src/db/databaseUrl.js';
import { migrate, packageRoot } from '../src/db/migrate.js';
import { dumpSchema } from '../src/db/schemaSnapshot.js';

const out = join(packageRoot(), 'db', 'schema.sql');

await withDatabase(async (serverUrl) => {
  // A scratch database so a DATABASE_URL pointing at a real application is never touched.
  const name = `lethe_dump_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client(serverUrl);
  await admin.connect();
  await admin.query(`create database ${pg.escapeIdentifier(name)}`);
  try {
    const url = withDatabaseName(serverUrl, name);
    const { applied } = await migrate(url);
    const client = new pg.Client(url);
    await client.connect();
    try {
      writeFileSync(out, await dumpSchema(client));
    } finally {
      await client.end();
    }
    console.log(`wrote ${out} (${applied.length} migrations)`);
  } finally {
    await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
    await admin.end();
  }
});
