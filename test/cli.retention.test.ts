// `lethe retention list|preview|approve|run|history` and `lethe erase --query` as real
// processes (bin/lethe.js) against a real PostgreSQL: output, --json, exit codes.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const BIN = fileURLToPath(new URL('../bin/lethe.js', import.meta.url));
let db: TestDatabase;

function lethe(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, DATABASE_URL: db.url },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const segment = 'select c.id from app.customers c where c.id between 31 and 33';

beforeAll(async () => {
  db = await createTestDatabase('cli_retention');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  await db.query(`select pii.set_retention_policy('inactive', $1, 2)`, [segment]);
});
afterAll(() => db?.drop());

describe('lethe retention', () => {
  it('list shows the policy unapproved; preview shows counts and hashes, never keys', async () => {
    const list = await lethe(['retention', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/inactive\s+1\s+false\s+false\s+daily\s+2\s+erase/);
    const preview = await lethe(['retention', 'preview', 'inactive']);
    expect(preview.code, preview.stderr).toBe(0);
    expect(preview.stdout).toMatch(/candidates\s+3/);
    expect(preview.stdout).toMatch(/within limit\s+no: enforcement would be blocked/);
    expect(preview.stdout).toMatch(/app\.customers\s+3/);
    expect(preview.stdout).toMatch(/[0-9a-f]{64}/);
    expect(preview.stdout).not.toMatch(/user3[123]@/);
  });

  it('run refuses an unapproved version (exit 1); approve then run: blocked over the limit (exit 1)', async () => {
    const unapproved = await lethe(['retention', 'run', 'inactive', '--json']);
    expect(unapproved.code).toBe(1);
    expect(JSON.parse(unapproved.stdout)).toMatchObject([{ policyName: 'inactive', outcome: 'unapproved' }]);
    const approve = await lethe(['retention', 'approve', 'inactive', '1']);
    expect(approve.code, approve.stderr).toBe(0);
    expect(approve.stdout).toBe('retention policy inactive version 1 approved\n');
    const blocked = await lethe(['retention', 'run', 'inactive']);
    expect(blocked.code).toBe(1);
    expect(blocked.stdout).toMatch(/inactive\s+1\s+blocked\s+3/);
  });

  it('approve of a version that is not current: exit 1 with the SQLSTATE', async () => {
    const r = await lethe(['retention', 'approve', 'inactive', '7']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is at version 1, not 7: approve the current version \(SQLSTATE 55000\)/);
  });

  it('history lists the runs, newest first', async () => {
    const r = await lethe(['retention', 'history', 'inactive', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).map((x: { outcome: string }) => x.outcome)).toEqual(['blocked', 'unapproved']);
  });
});

describe('lethe erase --query', () => {
  it('--dry-run prints the count and rows per table and files nothing', async () => {
    const r = await lethe(['erase', '--query', segment, '--max', '5', '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dry run: subjects\s+3/);
    expect(r.stdout).toMatch(/app\.orders\s+6/);
    expect((await db.query('select count(*)::int as n from pii.requests')).rows[0].n).toBe(0);
  });

  it('over --max: exit 2 with 54000; without --max: usage error', async () => {
    const over = await lethe(['erase', '--query', segment, '--max', '2']);
    expect(over.code).toBe(2);
    expect(over.stderr).toMatch(/selects 3 subjects, more than max_subjects \(2\).*SQLSTATE 54000/);
    const noMax = await lethe(['erase', '--query', segment]);
    expect(noMax.code).toBe(2);
    expect(noMax.stderr).toMatch(/--query needs --max/);
  });

  it('files one request and prints its status', async () => {
    const r = await lethe(['erase', '--query', segment, '--max', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'queued', source: 'query', total: 3 });
  });
});
