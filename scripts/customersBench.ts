// What the import and admin benchmarks share: a scratch database with Lethe installed and
// `bench.customers` (id, email) of n rows registered, and a CSV of all their ids.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { migrate } from '../src/db/migrate.js';

export interface CustomersBench {
  /** The scratch database (as the server URL's user). */
  url: string;
  /** A connection to it, for more setup. */
  client: pg.Client;
  /** customer_id header, ids 1..n. */
  csvPath: string;
}

/** Runs fn on a fresh scratch database, then drops it (and the CSV) whatever happens. */
export async function withCustomersBench(
  server: string,
  prefix: string,
  customers: number,
  fn: (bench: CustomersBench) => Promise<void>,
): Promise<void> {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client(server);
  admin.on('error', () => {});
  await admin.connect();
  await admin.query(`create database ${name}`);
  const dir = await mkdtemp(join(tmpdir(), 'lethe-bench-'));
  let client: pg.Client | undefined;
  try {
    const url = withDatabaseName(server, name);
    await migrate(url);
    client = new pg.Client(url);
    client.on('error', (e) => console.error('setup client', e.message));
    await client.connect();
    await client.query(`create schema bench;
      create table bench.customers (id bigint primary key, email text);
      insert into bench.customers select i, 'c' || i || '@example.com' from generate_series(1, ${customers}) i;
      select pii.register_subject_table('bench.customers', 'id');
      select pii.register_column('bench.customers', 'email', 'null');
      update pii.settings set max_keys_per_request = greatest(max_keys_per_request, ${customers});`);
    await client.query('vacuum analyze bench.customers');
    const csvPath = join(dir, 'erase.csv');
    await writeIdCsv(csvPath, customers);
    await fn({ url, client, csvPath });
  } finally {
    await client?.end().catch(() => undefined);
    await admin.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
    await admin.end();
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeIdCsv(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  out.write('customer_id\n');
  const batch = 10_000;
  for (let i = 1; i <= rows; i += batch) {
    let s = '';
    for (let j = i; j < Math.min(i + batch, rows + 1); j++) s += `${j}\n`;
    if (!out.write(s)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}
