// `npm run test:matrix`: the whole vitest suite once per supported PostgreSQL major, each on
// its own embedded cluster (LETHE_PG_VERSION, see src/db/embeddedPostgres.ts), then a table
// of outcomes and wall times. Extra arguments go to vitest (e.g. a test file to narrow it):
//   npm run test:matrix -- test/migrate.test.ts
//   PG_MAJORS=14,18 npm run test:matrix
import { spawnSync } from 'node:child_process';

const majors = (process.env.PG_MAJORS ?? '14,15,16,17,18').split(',').map((m) => m.trim());
const results: { major: string; ok: boolean; seconds: number }[] = [];
for (const major of majors) {
  process.stdout.write(`\n=== PostgreSQL ${major} ===\n`);
  const started = performance.now();
  const run = spawnSync('npx', ['vitest', 'run', ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, LETHE_PG_VERSION: major },
  });
  results.push({ major, ok: run.status === 0, seconds: (performance.now() - started) / 1000 });
}
process.stdout.write('\nPostgreSQL  result  wall time\n');
for (const r of results) {
  process.stdout.write(`${r.major.padEnd(10)}  ${(r.ok ? 'pass' : 'FAIL').padEnd(6)}  ${r.seconds.toFixed(0)} s\n`);
}
process.exitCode = results.every((r) => r.ok) ? 0 : 1;
