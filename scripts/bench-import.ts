// Measures the CSV import: a file of N customer ids (default 1,000,000, all matching)
// streamed into pii.import_rows and turned into one request.
//
//   npm run bench:import [-- --rows 1000000] [--database-url postgres://…/postgres]
//
// Prints rows/s into the staging table (parse + COPY), rows/s to a queued request
// (including pii.request_erasure_from_import), and the importing process's peak RSS.
// The import runs in a child process so its peak memory is its own, not the setup's.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { createLethe } from '../src/api/createLethe.js';
import { withDatabase } from '../src/db/databaseUrl.js';
import { withCustomersBench } from './customersBench.js';

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
    (server) =>
      withCustomersBench(server, 'lethe_bench_import', rows, async ({ url, csvPath }) => {
        const { stdout } = await run(
          process.execPath,
          ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', url, '--child', csvPath],
          { maxBuffer: 64 * 1024 * 1024 },
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
      }),
    { databaseUrl: values['database-url'] },
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
