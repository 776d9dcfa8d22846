// Every `lethe` command as a real process (bin/lethe.js), against a real PostgreSQL:
// output, --json, exit codes (0 ok, 1 failure, 2 bad usage/input), the worker's graceful
// shutdown, and that keys never appear in output or logs.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { collect, type ProcessResult } from './helpers/collect.js';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const BIN = fileURLToPath(new URL('../bin/lethe.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'lethe-cli-'));
let db: TestDatabase;

function start(args: string[], env: Record<string, string | undefined> = { DATABASE_URL: db.url }): ChildProcess {
  const { DATABASE_URL: _ignored, ...parentEnv } = process.env;
  return spawn(process.execPath, [BIN, ...args], { env: { ...parentEnv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
}

const lethe = (args: string[], env?: Record<string, string | undefined>) => collect(start(args, env));

async function json(args: string[]): Promise<any> {
  const r = await lethe([...args, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

let worker: ChildProcess | undefined;
let workerOut: Promise<ProcessResult> | undefined;

beforeAll(async () => {
  db = await createTestDatabase('cli');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
});
afterAll(async () => {
  worker?.kill('SIGKILL');
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

describe('usage', () => {
  it('prints help with exit 0, and usage errors exit 2', async () => {
    // Independent processes: run them side by side.
    const [help, none, unknown, missingArg, badId, badConcurrency] = await Promise.all([
      lethe(['--help']),
      lethe([]),
      lethe(['frobnicate']),
      lethe(['status']),
      lethe(['status', 'nope']),
      lethe(['worker', '--concurrency', '0']),
    ]);
    expect(help.code).toBe(0);
    for (const c of [
      'migrate',
      'erase',
      'import',
      'status',
      'verify',
      'was-erased',
      'worker',
      'grant',
      'lint',
      'demo',
    ]) {
      expect(help.stdout).toContain(c);
    }
    expect(none.code).toBe(2);
    expect(unknown).toMatchObject({ code: 2, stderr: expect.stringMatching(/unknown command 'frobnicate'/) });
    expect(missingArg.code).toBe(2);
    expect(badId).toMatchObject({ code: 2, stderr: expect.stringMatching(/"nope" is not a request id/) });
    expect(badConcurrency).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--concurrency must be a positive integer/),
    });
  });

  it('says clearly when no database is given', async () => {
    const r = await lethe(['lint'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no database given: pass --database-url .* or set DATABASE_URL/);
  });

  it('reports an unreachable database as a failure (exit 1)', async () => {
    const r = await lethe(['lint', '--database-url', 'postgres://x:y@127.0.0.1:1/nope'], {});
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/cannot connect to PostgreSQL.*08001/) });
  });
});

describe('migrate', () => {
  it('installs Lethe into an empty database, then finds it up to date', async () => {
    const name = `lethe_cli_migrate_${Math.random().toString(36).slice(2, 8)}`;
    const admin = new pg.Client(inject('adminUrl'));
    await admin.connect();
    await admin.query(`create database ${name}`);
    try {
      const url = withDatabaseName(inject('adminUrl'), name);
      const first = await lethe(['migrate', '--json'], { DATABASE_URL: url });
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout).applied.length).toBeGreaterThan(5);
      const again = await lethe(['migrate', '--database-url', url], {});
      expect(again).toMatchObject({ code: 0, stdout: 'already up to date\n' });
    } finally {
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });
});

describe('erase, worker, status, verify, was-erased', () => {
  let id: string;

  it('erase queues a request and prints counts, never the keys', async () => {
    const r = await lethe(['erase', '11', '12', '12', '987654', '--request-key', 'cli-1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/status\s+queued/);
    expect(r.stdout).toMatch(/subjects\s+3/);
    expect(r.stdout).toMatch(/unmatched\s+1/);
    expect(r.stdout).toMatch(/duplicates\s+1/);
    expect(r.stdout + r.stderr).not.toMatch(/987654/);
    id = /request\s+([0-9a-f-]{36})/.exec(r.stdout)![1]!;
    // Idempotent on --request-key.
    expect((await json(['erase', '11', '--request-key', 'cli-1'])).id).toBe(id);
  });

  it('erase reads --file, and refuses no keys (2) and bad keys (2)', async () => {
    const s = await json(['erase', '--file', file('keys.txt', '13\n\n14\r\n'), '--mode', 'delete', '--due', '48h']);
    expect(s).toMatchObject({ status: 'queued', total: 2, mode: 'delete', source: 'cli' });
    expect(new Date(s.dueAt).getTime() - Date.now()).toBeGreaterThan(47 * 3_600_000);
    const [none, shred, bad] = await Promise.all([
      lethe(['erase']),
      lethe(['erase', '15', '--mode', 'shred']),
      lethe(['erase', 'abc']),
    ]);
    expect(none).toMatchObject({ code: 2, stderr: expect.stringMatching(/no subject keys/) });
    expect(shred).toMatchObject({ code: 2, stderr: expect.stringMatching(/--mode must be erase or delete/) });
    expect(bad).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/subject key #1 is not a valid bigint \(SQLSTATE 22P02\)/),
    });
  });

  it('worker processes the queue; status --watch follows a request to done', async () => {
    worker = start(['worker', '--concurrency', '2']);
    workerOut = collect(worker);
    const watched = await lethe(['status', id, '--watch']);
    expect(watched.code, watched.stderr).toBe(0);
    expect(watched.stdout).toMatch(/status\s+done/);
    expect(watched.stdout).toMatch(/progress\s+100%/);
    expect(watched.stdout).toMatch(/app\.customers\s+2/);
    expect(watched.stdout).toMatch(/kind\s+customers/);
    const s = await json(['status', id]);
    expect(s).toMatchObject({
      id,
      status: 'done',
      kind: 'customers',
      total: 3,
      matched: 2,
      erased: 2,
      residualCount: 0,
    }); // subjects erased, not the unmatched key
  });

  it('status --items/--unmatched lists keyed hashes, not keys', async () => {
    const s = await json(['status', id, '--unmatched']);
    expect(s.items).toHaveLength(1);
    expect(s.items[0]).toMatchObject({ matched: false, subjectHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const text = await lethe(['status', id, '--items']);
    expect(text.stdout).toMatch(/subject hash/);
    expect(text.stdout).not.toMatch(/\b(11|12|987654)\b\s/);
  });

  it('status of an unknown request fails with exit 1', async () => {
    const r = await lethe(['status', '00000000-0000-4000-8000-000000000000']);
    expect(r).toMatchObject({ code: 1, stderr: expect.stringMatching(/does not exist \(SQLSTATE 42704\)/) });
  });

  it('verify exits 0 when nothing is left and 1 when a trace is back', async () => {
    const ok = await lethe(['verify', id]);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/verified, no residual trace/) });
    // Put a deleted row back behind the guards' back.
    await db.query(`begin; select pii.set_guard('app.events', 'off');
      insert into app.events (customer_id, occurred_at, kind, payload) values (11, '2026-10-02', 'page_view', '{}');
      select pii.set_guard('app.events', 'scrub'); commit;`);
    const bad = await lethe(['verify', id, '--json']);
    expect(bad.code).toBe(1);
    const out = JSON.parse(bad.stdout);
    expect(out).toMatchObject({
      verified: false,
      residuals: [expect.objectContaining({ tableName: expect.stringMatching(/app\.events/) })],
    });
    await db.query(`delete from app.events where customer_id = 11`);
  });

  it('was-erased answers by key or by hash', async () => {
    const yes = await json(['was-erased', '11']);
    expect(yes).toMatchObject({ erased: true, requestId: id });
    const no = await lethe(['was-erased', '3']);
    expect(no).toMatchObject({ code: 0, stdout: expect.stringMatching(/erased\s+no/) });
    const { items } = await json(['status', id, '--items']);
    const byHash = await json(['was-erased', '--hash', items[0].subjectHash]);
    expect(byHash.erased).toBe(true);
    expect((await lethe(['was-erased', '--hash', 'xyz'])).code).toBe(2);
  });

  it('erase --wait waits for the worker and exits 0 when done', async () => {
    const r = await lethe(['erase', '16', '--wait']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/status\s+done/);
  });

  it('the worker stops gracefully on SIGTERM (exit 0), logging ids and counts only', async () => {
    worker!.kill('SIGTERM');
    const r = await workerOut!;
    worker = undefined;
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/SIGTERM: finishing the chunk in flight/);
    expect(r.stderr).toMatch(/stopped/);
    expect(r.stderr).toMatch(new RegExp(`request ${id}: done`));
    expect(r.stderr).not.toMatch(/987654|user1\d@example/);
    // Nothing spurious at start (graphile-worker once logged that it found no crontab file).
    expect(r.stderr).not.toMatch(/\] (error|warning):|crontab/i);
  });
});

describe('import', () => {
  it('imports a CSV and reports rows, matched, unmatched rows and duplicates', async () => {
    const path = file('erase.csv', 'customer_id\n21\n22\n22\n999999\n');
    const r = await lethe(['import', path]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/header and first 4 row\(s\) are valid/);
    expect(r.stdout).toMatch(/rows read\s+4/);
    expect(r.stdout).toMatch(/matched\s+2/);
    expect(r.stdout).toMatch(/unmatched\s+1/);
    expect(r.stdout).toMatch(/duplicates\s+1/);
    expect(r.stdout).toMatch(/unmatched rows\n\s*row\s+subject hash\n[- ]+\n\s*5\s+[0-9a-f]{64}/);
    expect(r.stdout).not.toContain('999999');
    const j = await json(['import', file('erase2.csv', 'subject_key\n23\n')]);
    expect(j).toMatchObject({
      rowsRead: 1,
      matched: 1,
      status: 'queued',
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
  });

  it('rejects a malformed file with row numbers and exit 2; nothing is queued', async () => {
    const before = (await db.query('select count(*)::int as n from pii.requests')).rows[0].n;
    const r = await lethe(['import', file('bad.csv', 'customer_id,erase\n24,true\n"25",true\n,1\n26,no\n27\n')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/row 3: column 1: quoted values are not allowed/);
    expect(r.stderr).toMatch(/row 4: empty subject key/);
    expect(r.stderr).toMatch(/row 5: erase flag must be true or 1/);
    expect(r.stderr).toMatch(/row 6: expected 2 columns, found 1/);
    const j = await lethe(['import', file('bad2.csv', 'email\nx@example.com\n'), '--json']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ rejected: true, stage: 'header', errors: [{ row: 1 }] });
    expect(j.stdout).not.toContain('x@example.com');
    expect((await db.query('select count(*)::int as n from pii.requests')).rows[0].n).toBe(before);
    expect((await lethe(['import', join(dir, 'missing.csv')])).code).toBe(2);
  });

  it('--skip-invalid imports the valid rows and lists the rejected ones', async () => {
    const r = await json(['import', file('mixed.csv', 'customer_id\n28\n"29"\n30\n'), '--skip-invalid']);
    expect(r).toMatchObject({
      rowsRead: 3,
      rowsImported: 2,
      rejected: 1,
      rejectedRows: [{ row: 3, reason: 'column 1: quoted values are not allowed' }],
    });
  });

  it('handles a 50,000-row file', async () => {
    await db.query(`insert into app.customers (id) select i from generate_series(200001, 250000) i`);
    const ids = Array.from({ length: 50_000 }, (_, i) => 200_001 + i);
    const r = await json(['import', file('big.csv', `customer_id\n${ids.join('\n')}\n`)]);
    expect(r).toMatchObject({
      rowsRead: 50_000,
      rowsImported: 50_000,
      subjects: 50_000,
      matched: 50_000,
      unmatched: 0,
    });
  });
});

describe('grant and lint', () => {
  it('grant makes a login role a pii_operator; bad roles fail with the SQLSTATE', async () => {
    await db.query(`drop role if exists lethe_cli_dpo; create role lethe_cli_dpo login`);
    const r = await lethe(['grant', 'pii_operator', 'lethe_cli_dpo']);
    expect(r).toMatchObject({ code: 0, stdout: 'granted pii_operator to lethe_cli_dpo\n' });
    const { rows } = await db.query(`select pg_has_role('lethe_cli_dpo', 'pii_operator', 'member') as m`);
    expect(rows[0].m).toBe(true);
    expect((await lethe(['grant', 'pii_superhero', 'lethe_cli_dpo'])).code).toBe(2); // 22023
    expect((await lethe(['grant', 'pii_operator', 'nobody_here'])).code).toBe(1); // 42704
  });

  it('lint lists problems; exit 0 for warnings', async () => {
    const r = await lethe(['lint']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/warning\s+app\.loyalty_points/);
    const j = await json(['lint']);
    expect(j.some((p: { severity: string }) => p.severity === 'warning')).toBe(true);
  });
});
