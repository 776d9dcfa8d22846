// End to end on a throwaway database: install, seed a CRM, register PII, import a CSV of
// customers to erase, run the worker until done, verify, show a customer before/after
// and the audit trail. The demo never touches existing data: without a URL it starts an
// embedded PostgreSQL; with one it works in a scratch database it drops afterwards.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { generateCrm } from './crm/generateCrm.js';
import { createLethe } from '../api/createLethe.js';
import { withDatabaseName } from '../db/databaseUrl.js';
import { startEmbeddedPostgres } from '../db/embeddedPostgres.js';
import { migrate } from '../db/migrate.js';
import { runWorker } from '../worker/runWorker.js';
import { writeDemoCsv } from './demoCsv.js';
import { registerCrm } from './registerCrm.js';
import { showCustomer, showAudit, type Out } from './show.js';
import { runSql } from '../db/runSql.js';

export interface DemoOptions {
  /** A server to work on (a scratch database is created and dropped); default: embedded PostgreSQL. */
  serverUrl?: string;
  /** CRM scale: 0.01 = 10,000 customers, 200,000 events. */
  scale?: number;
  out?: Out;
}

export interface DemoResult {
  requestId: string;
  status: string;
  verified: boolean;
  seconds: number;
  steps: Record<string, number>;
}

export async function runDemo(opts: DemoOptions = {}): Promise<DemoResult> {
  const out: Out = opts.out ?? ((s) => process.stdout.write(s));
  const started = performance.now();
  const steps: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const r = await fn();
    steps[name] = (performance.now() - t0) / 1000;
    out(`  ${name}: ${steps[name]!.toFixed(1)} s\n`);
    return r;
  };

  out('== Lethe demo ==\n');
  const cluster = opts.serverUrl ? undefined : await step('start embedded PostgreSQL', () => startEmbeddedPostgres());
  const server = opts.serverUrl ?? cluster!.url;
  const dbName = `lethe_demo_${randomBytes(4).toString('hex')}`;
  const tmp = await mkdtemp(join(tmpdir(), 'lethe-demo-'));
  await runSql(server, `create database ${pg.escapeIdentifier(dbName)}`);
  const url = withDatabaseName(server, dbName);
  const lethe = createLethe({ connectionString: url, applicationName: 'lethe-demo', max: 4 });
  try {
    await step('install Lethe (lethe migrate)', () => migrate(url));
    const scale = opts.scale ?? 0.01;
    const crm = await step(`seed CRM at scale ${scale}`, () => generateCrm(lethe.pool, { scale }));
    out(
      `  crm: ${fmt(crm.counts.customers)} customers, ${fmt(crm.counts.events)} events, ${fmt(crm.counts.orders)} orders, ` +
        `${fmt(crm.counts.order_items)} order items, ${fmt(crm.counts.loyalty_points)} loyalty rows\n`,
    );
    await step('register PII columns', () => registerCrm(lethe));

    const csv = await writeDemoCsv(join(tmp, 'erase-2026-11.csv'), crm.counts.customers ?? 10_000);
    const someone = csv.customerIds[0]!;
    out(`\n== customer ${someone} before ==\n`);
    await showCustomer(lethe.pool, someone, out);

    out(`\n== privacy team uploads ${csv.customerIds.length} customers (erase-2026-11.csv) ==\n`);
    const report = await step('import CSV', () => lethe.importCsv(csv.path, { requestKey: 'demo-erase-2026-11' }));
    out(
      `  request ${report.requestId}: ${report.rowsRead} rows, ${report.subjects} subjects, ${report.matched} matched, ` +
        `${report.unmatched} unmatched (rows ${report.unmatchedRows.map((u) => u.row).join(', ')}), ${report.duplicates} duplicates\n`,
    );

    const worker = await runWorker({ pool: lethe.pool, concurrency: 1, log: () => {} });
    const status = await step('worker processes the request', async () => {
      try {
        return await lethe.waitForRequest(report.requestId, { timeoutMs: 120_000 });
      } finally {
        await worker.stop();
      }
    });
    out(
      `  status ${status.status}: ${status.erased}/${status.total} subjects; rows changed: ` +
        `${Object.entries(status.rowsAffected)
          .map(([t, n]) => `${t} ${fmt(n)}`)
          .join(', ')}\n`,
    );

    const verification = await step('verify (live re-check)', () => lethe.verifyRequest(report.requestId));
    out(
      `  ${verification.verified ? 'verified: no residual trace' : `${verification.residuals.length} residual trace(s)!`}\n`,
    );

    out(`\n== customer ${someone} after ==\n`);
    await showCustomer(lethe.pool, someone, out);
    const was = await lethe.wasErased(String(someone));
    out(
      `  was-erased ${someone}: ${was.erased ? `yes, at ${was.erasedAt?.toISOString()} by request ${was.requestId}` : 'no'}\n`,
    );

    out('\n== audit trail of the request (no keys, no PII) ==\n');
    await showAudit(lethe, report.requestId, out);

    const seconds = (performance.now() - started) / 1000;
    out(`\ndemo finished in ${seconds.toFixed(1)} s\n`);
    return { requestId: report.requestId, status: status.status, verified: verification.verified, seconds, steps };
  } finally {
    await lethe.close();
    await runSql(server, `drop database if exists ${pg.escapeIdentifier(dbName)} with (force)`).catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
    await cluster?.stop();
  }
}

const fmt = (n: number | undefined) => (n ?? 0).toLocaleString('en-US');
