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

describe('lethe retention set', () => {
  it('stores a new version (the same definition again: the same version), disabled unless --enable', async () => {
    const query = 'select c.id from app.customers c where c.id between 34 and 35';
    const first = await lethe(['retention', 'set', 'cli-set', '--query', query, '--max', '5', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ policy: 'cli-set', version: 1 });
    const again = await lethe(['retention', 'set', 'cli-set', '--query', query, '--max', '5']);
    expect(again.stdout).toBe(
      'retention policy cli-set is at version 1: preview it (lethe retention preview cli-set), then approve it (lethe retention approve cli-set 1)\n',
    );
    const changed = await lethe([
      'retention',
      'set',
      'cli-set',
      '--query',
      query,
      '--max',
      '9',
      '--mode',
      'delete',
      '--schedule',
      'weekly',
      '--enable',
      '--json',
    ]);
    expect(JSON.parse(changed.stdout)).toEqual({ policy: 'cli-set', version: 2 });
    const { rows } = await db.query(
      `select version, subject_query, max_subjects, mode, schedule, enabled, approved from pii.retention_policies where policy_name = 'cli-set'`,
    );
    expect(rows).toEqual([
      {
        version: 2,
        subject_query: query,
        max_subjects: 9,
        mode: 'delete',
        schedule: 'weekly',
        enabled: true,
        approved: false,
      },
    ]);
  });

  it('refuses a query that returns the wrong type (exit 1, SQLSTATE 42804) and stores nothing', async () => {
    const r = await lethe([
      'retention',
      'set',
      'cli-bad',
      '--query',
      'select c.email from app.customers c',
      '--max',
      '5',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/subject_query returns text but the subject key is bigint.*SQLSTATE 42804/);
    expect(
      (await db.query(`select count(*)::int as n from pii.retention_policy_versions where policy_name = 'cli-bad'`))
        .rows[0].n,
    ).toBe(0);
  });

  it('usage errors (exit 2): no --max, a bad --schedule or --mode', async () => {
    const noMax = await lethe(['retention', 'set', 'cli-bad', '--query', segment]);
    expect(noMax.code).toBe(2);
    expect(noMax.stderr).toMatch(/--max/);
    const schedule = await lethe([
      'retention',
      'set',
      'cli-bad',
      '--query',
      segment,
      '--max',
      '5',
      '--schedule',
      'yearly',
    ]);
    expect(schedule.code).toBe(2);
    expect(schedule.stderr).toMatch(/--schedule must be hourly, daily, weekly, monthly, got "yearly"/);
    const mode = await lethe(['retention', 'set', 'cli-bad', '--query', segment, '--max', '5', '--mode', 'shred']);
    expect(mode.code).toBe(2);
    expect(mode.stderr).toMatch(/--mode must be erase or delete/);
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
