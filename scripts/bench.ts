// npm run bench [-- --scale 1 --database-url URL]
//
// Builds the demo CRM (src/demo/crm) at the given scale, installs Lethe, registers the crm
// tables, then measures Lethe against hand-written SQL and other baselines, each pair
// alternating in one run (see BENCHMARKS.md "Method"). Prints a summary table and writes
// BENCHMARKS.md. Without --database-url or DATABASE_URL it runs on a throwaway embedded
// PostgreSQL; with one, it creates (and afterwards drops) a database of its own there.
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { packageRoot } from '../src/db/migrate.js';
import { resolveDatabaseUrl, withDatabaseName } from '../src/db/databaseUrl.js';
import { crmBytes } from '../src/demo/crm/generateCrm.js';
import { benchCsvImport } from './bench/csvImport.js';
import {
  benchBulkErasure,
  benchCommittedRequest,
  benchSingle,
  benchVerify,
  Eraser,
  type Method,
} from './bench/erasure.js';
import { profileBulk } from './bench/erasureProfile.js';
import { benchGuards } from './bench/guards.js';
import { renderMarkdown } from './bench/markdown.js';
import { loadAverage, machineInfo, serverInfo } from './bench/machine.js';
import { benchMasking } from './bench/masking.js';
import { benchVault } from './bench/vault.js';
import { profileStatements } from './bench/profile.js';
import { benchRestoreReplay, copyDatabase, databaseName, dropDatabase } from './bench/restoreReplay.js';
import { benchRetention } from './bench/retention.js';
import { benchScaling, scalingSizes } from './bench/scaling.js';
import { type BenchOptions, type BenchResults, summaryRows, textTable } from './bench/results.js';
import {
  BENCH_SCHEMA_SQL,
  buildDataset,
  connect,
  openBenchDatabase,
  pickSubjects,
  REGISTER_SQL,
} from './bench/setup.js';

const USAGE = `usage: npm run bench -- [options]

  --scale N            dataset scale: 1 = 1,000,000 customers, 20,000,000 events (default 1)
  --database-url URL   server to run on (default: $DATABASE_URL, else a throwaway embedded
                       PostgreSQL); the benchmark creates a database of its own there and
                       drops it at the end
  --pairs N            alternating pairs per comparison, medians reported (default 3, min 3)
  --output FILE        where to write the report (default: BENCHMARKS.md at the repo root)
  --no-report          print the summary only; write no file
  --keep               keep the benchmark database on the server (not with the embedded one)
  --in-place           use the database of --database-url itself instead of creating one
  --skip-build         reuse the crm dataset already in that database (with --in-place)
  --only LIST          run only these sections (comma-separated: erasure,single,masking,
                       vault,retention,scaling,request,verify,guards,csv,restore); for
                       development
  --render FILE.json   rewrite the report from the results a run saved (no measuring)
  --methods LIST       item 1's methods (default hand,lethe,request,plpgsql,client); hand
                       is always needed (it is the floor)`;

const SECTIONS = [
  'erasure',
  'single',
  'masking',
  'vault',
  'retention',
  'scaling',
  'request',
  'verify',
  'guards',
  'csv',
  'restore',
] as const;
type Section = (typeof SECTIONS)[number];

function log(s: string) {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${s}\n`);
}

async function main(): Promise<number> {
  const startedAt = new Date();
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        scale: { type: 'string', default: '1' },
        'database-url': { type: 'string' },
        pairs: { type: 'string', default: '3' },
        output: { type: 'string' },
        'no-report': { type: 'boolean', default: false },
        keep: { type: 'boolean', default: false },
        'in-place': { type: 'boolean', default: false },
        'skip-build': { type: 'boolean', default: false },
        only: { type: 'string' },
        methods: { type: 'string' },
        render: { type: 'string' },
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
  if (values.render) {
    const saved = JSON.parse(readFileSync(values.render, 'utf8')) as BenchResults;
    saved.startedAt = new Date(saved.startedAt);
    if (saved.finishedAt) saved.finishedAt = new Date(saved.finishedAt);
    console.log(textTable(summaryRows(saved)));
    if (!values['no-report']) {
      const out = values.output ?? join(packageRoot(), 'BENCHMARKS.md');
      writeFileSync(out, renderMarkdown(saved));
      log(`wrote ${out}`);
    }
    return 0;
  }
  const scale = Number(values.scale);
  const pairs = Number(values.pairs);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 100) {
    console.error(`--scale must be a number in (0, 100], got "${values.scale}"\n\n${USAGE}`);
    return 2;
  }
  if (!Number.isInteger(pairs) || pairs < 3 || pairs > 50) {
    console.error(`--pairs must be an integer from 3 to 50, got "${values.pairs}"\n\n${USAGE}`);
    return 2;
  }
  const only = new Set<Section>((values.only?.split(',').map((s) => s.trim()) ?? SECTIONS) as Section[]);
  for (const s of only) {
    if (!SECTIONS.includes(s)) {
      console.error(`--only: unknown section "${s}" (${SECTIONS.join(', ')})`);
      return 2;
    }
  }
  const databaseUrl = resolveDatabaseUrl(values['database-url']);
  if ((values['in-place'] || values['skip-build']) && !databaseUrl) {
    console.error('--in-place and --skip-build need --database-url (or DATABASE_URL)');
    return 2;
  }
  if (values['skip-build'] && !values['in-place']) {
    console.error('--skip-build needs --in-place (the dataset lives in the database of the URL)');
    return 2;
  }

  // Sizes: the figures at scale 1, proportional below (never under a few subjects).
  const customers = Math.max(1, Math.round(1_000_000 * scale));
  const bulkSubjects = Math.max(5, Math.min(Math.round(50_000 * scale), Math.floor(customers / 2)));
  const options: BenchOptions = {
    scale,
    pairs,
    bulkSubjects,
    cappedSubjects: Math.min(2_000, bulkSubjects),
    // 200 measured (+1 warm-up) and 1,000 lookups from scale 0.01 up; fewer below, where
    // the run only proves the benchmark still works.
    singleSubjects: Math.max(3, Math.min(201, Math.round(20_000 * scale))),
    lookups: Math.max(10, Math.min(1_000, Math.round(100_000 * scale))),
    guardRows: Math.max(1_000, Math.round(1_000_000 * scale)),
    csvRows: Math.max(1_000, Math.round(1_000_000 * scale)),
    vaultValues: Math.max(1_000, Math.round(1_000_000 * scale)),
    reusedDataset: values['skip-build'],
  };

  const machine = machineInfo();
  log(
    `scale ${scale}: ${bulkSubjects} subjects in bulk (${options.cappedSubjects} for the slow baselines), ${pairs} pairs per comparison`,
  );
  const bench = values['in-place']
    ? { url: databaseUrl!, embedded: false, close: async () => {} }
    : await openBenchDatabase({ databaseUrl, keep: values.keep, log });
  let db: pg.Client | undefined;
  try {
    let dataset: BenchResults['dataset'];
    if (values['skip-build']) {
      db = await connect(bench.url);
      const { rows } = await db.query<{ registered: boolean }>(
        `select to_regclass('pii.subject_table') is not null and exists (select from pii.subject_table) as registered`,
      );
      log(
        `reusing the crm dataset in place (--skip-build)${rows[0]!.registered ? ' and its registration' : '; registering the tables'}`,
      );
      if (!rows[0]!.registered) await db.query(REGISTER_SQL);
      await db.query(BENCH_SCHEMA_SQL);
      // Planner estimates (exact counts of 40 million rows would take minutes).
      const { rows: est } = await db.query<{ name: string; n: string }>(
        `select coalesce(p.relname, c.relname) as name, sum(c.reltuples)::bigint as n
           from pg_class c join pg_namespace ns on ns.oid = c.relnamespace
           left join pg_inherits i on i.inhrelid = c.oid left join pg_class p on p.oid = i.inhparent
          where ns.nspname = 'crm' and c.relkind = 'r' group by 1`,
      );
      dataset = {
        reused: true,
        bytes: await crmBytes(db),
        counts: Object.fromEntries(est.map((r) => [r.name, Number(r.n)])),
      };
    } else {
      log('building the dataset (src/demo/crm), installing Lethe, registering the tables');
      dataset = await buildDataset(bench.url, scale, log);
      log(`dataset built in ${dataset.seconds.toFixed(1)} s, ${(dataset.bytes / 2 ** 30).toFixed(2)} GiB`);
      db = await connect(bench.url);
    }
    const server = await serverInfo(db, bench.embedded);
    const results: BenchResults = { startedAt, options, machine, server, dataset, errors: [] };
    const section = async (name: Section, fn: () => Promise<void>) => {
      if (!only.has(name)) return;
      try {
        await fn();
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        results.errors.push({ section: name, message });
        log(`${name} FAILED: ${message}`);
        // A failure mid-transaction leaves the session aborted; start clean.
        await db!.query('rollback').catch(() => undefined);
      }
    };

    const subjects = await pickSubjects(db, {
      bulk: options.bulkSubjects,
      capped: options.cappedSubjects,
      single: options.singleSubjects,
    });
    const eraser = new Eraser(db);
    await eraser.restore();

    await section('erasure', async () => {
      log('1. bulk erasure (and the in-transaction samples of 2.)');
      const methods = (values.methods?.split(',').map((m) => m.trim()) ?? [
        'hand',
        'lethe',
        'request',
        'plpgsql',
        'client',
      ]) as Method[];
      results.bulk = await benchBulkErasure(eraser, subjects, pairs, log, methods);
      results.profile = await profileBulk(db!, eraser, subjects.bulk, server.pgStatStatements, log);
    });
    await section('single', async () => {
      log('4. single-subject erasure');
      results.single = await benchSingle(db!, subjects.single, server.pgStatStatements, log);
      await eraser.restore();
    });
    await section('masking', async () => {
      log('5. masked views');
      results.masking = await benchMasking(db!, { pairs: Math.max(pairs, 5), lookups: options.lookups, log });
    });
    await section('vault', async () => {
      log('8. tokenized vault');
      results.vault = await benchVault(db!, bench.url, {
        values: options.vaultValues,
        bulk: subjects.bulk,
        pairs,
        httpRequests: 200,
        log,
      });
    });
    // Item 9's backup: the database as it is before the committed erasure (no session may be open).
    const backupUrl = withDatabaseName(bench.url, `${databaseName(bench.url)}_backup`);
    let backedUp = false;
    if (only.has('restore')) {
      await db.end();
      await copyDatabase(bench.url, databaseName(backupUrl));
      backedUp = true;
      db = await connect(bench.url);
    }
    await section('retention', async () => {
      log('10. retention: preview and enforce of a policy selecting the bulk size');
      results.retention = await benchRetention(db!, { subjects: options.bulkSubjects, pairs, log });
    });
    await section('scaling', async () => {
      const sizes = scalingSizes(scale, customers);
      log(`11. scaling: erase_subjects and the request path at ${sizes.join(', ')} subjects`);
      // A new Eraser: the connection it was made with closed for item 9's backup.
      results.scaling = await benchScaling(db!, new Eraser(db!), sizes, log);
    });
    // From here on the data changes for good: the bulk erasure is committed.
    await section('request', async () => {
      log('2. request + worker, committed');
      results.committed = await benchCommittedRequest(db!, bench.url, subjects.bulk, log);
    });
    await section('verify', async () => {
      if (!results.committed) throw new Error('needs the committed request (section request)');
      log('3. verification');
      results.verify = await benchVerify(db!, results.committed.requestId, subjects.bulk, pairs, log);
      if (server.pgStatStatements) {
        results.verifyStatements = (
          await profileStatements(
            db!,
            true,
            () => db!.query('select count(*) from pii.verify_erasure($1::uuid)', [results.committed!.requestId]),
            10,
          )
        ).statements;
      }
    });
    await section('guards', async () => {
      log('6. guard triggers');
      results.guards = await benchGuards(db!, { rows: options.guardRows, pairs, pgss: server.pgStatStatements, log });
    });

    // Before item 9: its copies of the backup (six at scale 1, each erased) evict the
    // database's pages from the OS page cache, and the 2-worker request timed after them
    // waited on reads (44 s, IO:DataFileRead most of its samples; 6.9-7.5 s before them).
    await section('request', async () => {
      if (!subjects.parallel.length) return;
      log('2. request + 2 workers (two chunks at once), committed, on as many other subjects');
      results.committedParallel = await benchCommittedRequest(db!, bench.url, subjects.parallel, log, 2);
    });
    await section('restore', async () => {
      if (!backedUp) throw new Error('no backup was taken');
      log('9. restore replay: the original erasure and its replay, each on a fresh copy of the backup');
      results.restore = await benchRestoreReplay(backupUrl, subjects.bulk, pairs, log);
    });
    if (backedUp) await dropDatabase(bench.url, databaseName(backupUrl));
    // Last: the importer commits a request for every customer (1,000,000 at scale 1) and
    // leaves it queued. Any committed request timed after it ran beside that one's job (its
    // filing and chunks waiting on the chunks erasing the same subjects): the 2-worker
    // request took 382 s instead of 47 s that way.
    await section('csv', async () => {
      log('7. CSV import');
      results.csv = await benchCsvImport(db!, bench.url, { rows: options.csvRows, pairs, log });
    });

    results.finishedAt = new Date();
    results.machine.loadEnd = loadAverage();
    const rows = summaryRows(results);
    console.log('');
    console.log(textTable(rows));
    if (results.errors.length) {
      console.log('');
      for (const e of results.errors) console.log(`section ${e.section} failed: ${e.message}`);
    }
    // The raw results, so the report can be rewritten without measuring again (--render).
    const json = join(tmpdir(), `lethe-bench-${results.startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(json, JSON.stringify(results));
    log(`results saved to ${json}`);
    if (!values['no-report']) {
      const out = values.output ?? join(packageRoot(), 'BENCHMARKS.md');
      writeFileSync(out, renderMarkdown(results));
      log(`wrote ${out}`);
    }
    return results.errors.length ? 1 : 0;
  } finally {
    await db?.end().catch(() => undefined);
    await bench.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
