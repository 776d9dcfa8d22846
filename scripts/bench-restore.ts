// npm run bench:restore [-- --scale 0.05 --rounds 3 --database-url URL]
// Item 9 of npm run bench alone (scripts/bench/restoreReplay.ts) on a fresh demo CRM:
// 50,000 subjects at scale 1, proportionally fewer below. Prints the figures as JSON.
import { parseArgs } from 'node:util';
import { resolveDatabaseUrl } from '../src/db/databaseUrl.js';
import { benchRestoreReplay } from './bench/restoreReplay.js';
import { buildDataset, openBenchDatabase, pickSubjects, withClient } from './bench/setup.js';

function log(s: string) {
  process.stderr.write(`[bench:restore ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: '1' },
    rounds: { type: 'string', default: '3' },
    'database-url': { type: 'string' },
  },
});
const scale = Number(values.scale);
if (!Number.isFinite(scale) || scale <= 0 || scale > 100) {
  console.error(`--scale must be a number in (0, 100], got "${values.scale}"`);
  process.exit(2);
}
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50) {
  console.error(`--rounds must be an integer from 1 to 50, got "${values.rounds}"`);
  process.exit(2);
}
const bench = await openBenchDatabase({ databaseUrl: resolveDatabaseUrl(values['database-url']), log });
try {
  const dataset = await buildDataset(bench.url, scale, log);
  log(`dataset built in ${dataset.seconds.toFixed(1)} s`);
  const customers = Math.max(1, Math.round(1_000_000 * scale));
  const n = Math.max(5, Math.min(Math.round(50_000 * scale), Math.floor(customers / 2)));
  const { bulk } = await withClient(bench.url, (c) => pickSubjects(c, { bulk: n, capped: 0, single: 0 }));
  // The dataset itself is the backup: every run erases a fresh copy of it.
  const result = await benchRestoreReplay(bench.url, bulk, rounds, log);
  console.log(JSON.stringify(result, null, 2));
} finally {
  await bench.close();
}
