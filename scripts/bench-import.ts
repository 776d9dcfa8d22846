// Measures the CSV import: a file of N customer ids (default 1,000,000, all matching)
// streamed into pii.import_rows and turned into one request.
//
//   npm run bench:import [-- --rows 1000000] [--database-url postgres://…/postgres]
//
// Prints rows/s into the staging table (parse + COPY), rows/s to a queued request
// (including pii.request_erasure_from_import), and the importing process's peak RSS.
// The import runs in a child process so its peak memory is its own, not the setup's.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { createLethe } from '../src/api/createLethe.js';
import { withDatabase, withDatabaseName } from '../src/db/databaseUrl.js';
import { migrate } from '../src/db/migrate.js';
import { writeIdCsv } from './idCsv.js';

const run = promisify(execFile);

async function child(url: string, file: string): Promise<void> {
  const lethe = createLethe({ connectionString: url });
  try {
    const report = await lethe.importCsv(file, { listLimit: 10 });
    const { maxRSS } = process.resourceUsage();
    process.stdout.write(JSON.stringify({ report, maxRssMiB: Math.round(maxRSS / 1024) }));
  } finally {
    await lethe.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      'database-url': { type: 'string' },
      child: { type: 'string', multiple: true },
    },
    strict: true,
  });
  if (values.child) return child(values.child[0]!, values.child[1]!);
  const rows = Number(values.rows);

  await withDatabase(
    async (server) => {
      const name = `lethe_bench_import_${randomBytes(4).toString('hex')}`;
      const admin = new pg.Client(server);
      admin.on('error', () => {});
      await admin.connect();
      await admin.query(`create database ${name}`);
      const dir = await mkdtemp(join(tmpdir(), 'lethe-bench-'));
      try {
        const url = withDatabaseName(server, name);
        await migrate(url);
        const c = new pg.Client(url);
        c.on('error', (e) => console.error('setup client', e.message));
        await c.connect();
        await c.query(`create schema bench;
          create table bench.customers (id bigint primary key, email text);
          insert into bench.customers select i, 'c' || i || '@example.com' from generate_series(1, ${rows}) i;
          select pii.register_subject_table('bench.customers', 'id');
          select pii.register_column('bench.customers', 'email', 'null');
          update pii.settings set max_keys_per_request = greatest(max_keys_per_request, ${rows});`);
        await c.query('vacuum analyze bench.customers');
        await c.end();

        const file = join(dir, 'erase.csv');
        await writeIdCsv(file, rows);
        const { stdout } = await run(
          process.execPath,
          ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', url, '--child', file],
          {
            maxBuffer: 64 * 1024 * 1024,
          },
        );
        const { report, maxRssMiB } = JSON.parse(stdout);
        console.log(
          `rows                 ${report.rowsRead.toLocaleString('en-US')} (matched ${report.matched.toLocaleString('en-US')})`,
        );
        console.log(
          `staging (parse+COPY) ${report.stagingSeconds.toFixed(2)} s = ${report.stagingRowsPerSecond.toLocaleString('en-US')} rows/s`,
        );
        console.log(
          `to a queued request  ${report.seconds.toFixed(2)} s = ${report.rowsPerSecond.toLocaleString('en-US')} rows/s`,
        );
        console.log(`peak RSS             ${maxRssMiB} MiB (importing process)`);
      } finally {
        await admin.query(`drop database if exists ${name} with (force)`).catch(() => undefined);
        await admin.end();
        await rm(dir, { recursive: true, force: true });
      }
    },
    { databaseUrl: values['database-url'] },
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
