// Builds the demo CRM dataset (schema `crm`) and prints build time, row counts and size.
//
//   npm run crm:generate -- --scale 0.01 [--database-url postgres://...] [--parallel 2]
//   tsx scripts/generate-crm.ts --scale 1          # default size: 1M customers, 20M events
//
// Without --database-url or DATABASE_URL it starts a throwaway embedded PostgreSQL, which
// is deleted when the command ends: useful to measure, not to keep the data.
import { parseArgs } from 'node:util';
import pg from 'pg';
import { generateCrm } from '../src/demo/crm/generateCrm.js';

const USAGE = `usage: generate-crm [--scale N] [--database-url URL] [--parallel N]

  --scale N            1.0 = 1,000,000 customers, 20,000,000 events, 5,000,000 orders,
                       10,000,000 order items, 3,000,000 loyalty rows (default 1)
  --database-url URL   target database (default: $DATABASE_URL, else a throwaway
                       embedded PostgreSQL that is deleted on exit)
  --parallel N         connections building independent steps at once (default 2;
                       the data is the same whatever N)

Drops and recreates schema "crm" in the target database.`;

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        scale: { type: 'string', default: '1' },
        'database-url': { type: 'string' },
        parallel: { type: 'string', default: '2' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const scale = Number(values.scale);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 100) {
    console.error(`--scale must be a number in (0, 100], got "${values.scale}"\n\n${USAGE}`);
    return 2;
  }

  const parallel = Number(values.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 32) {
    console.error(`--parallel must be an integer in 1..32, got "${values.parallel}"\n\n${USAGE}`);
    return 2;
  }

  let url = values['database-url'] ?? process.env.DATABASE_URL;
  let stop: (() => Promise<void>) | undefined;
  if (!url) {
    const { startEmbeddedPostgres } = await import('../src/db/embeddedPostgres.js');
    console.log('no --database-url or DATABASE_URL: starting a throwaway embedded PostgreSQL');
    const handle = await startEmbeddedPostgres();
    url = handle.url;
    stop = handle.stop;
  }

  const pool = new pg.Pool({ connectionString: url, max: parallel });
  // pool.end() does not wait for the sockets to close: a throwaway server stopped right
  // after would make an idle client emit "terminating connection", which must not crash us.
  pool.on('error', () => undefined);
  try {
    const { rows } = await pool.query<{ v: string }>("select current_setting('server_version') as v");
    console.log(`PostgreSQL ${rows[0]!.v}, scale ${scale}`);
    const result = await generateCrm(pool, { scale, parallel, log: (s) => console.log(s) });

    const { rows: size } = await pool.query<{ pretty: string }>('select pg_size_pretty($1::bigint) as pretty', [
      result.bytes,
    ]);
    console.log('');
    console.log(
      `build time  ${result.seconds.toFixed(1)} s (${result.connections} connection${result.connections > 1 ? 's' : ''})`,
    );
    console.log(`total size  ${size[0]!.pretty} (schema crm: tables, indexes, TOAST)`);
    console.log('rows');
    const width = Math.max(...Object.keys(result.counts).map((k) => k.length));
    for (const [table, n] of Object.entries(result.counts)) {
      const indent = table.startsWith('events_') ? '    ' : '  ';
      console.log(
        `${indent}${`crm.${table}`.padEnd(width + 6 - indent.length)} ${n.toLocaleString('en-US').padStart(12)}`,
      );
    }
    return 0;
  } finally {
    await pool.end().catch(() => undefined);
    await stop?.();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
