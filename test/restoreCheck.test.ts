// lethe restore-check against a database restored from a backup taken before 1,000 erasures
// (erase and delete mode, requests and a direct call): real `lethe worker --ledger-dir` and
// `lethe restore-check` processes, the backup a copy of the database (CREATE DATABASE …
// TEMPLATE, what pg_dump/pg_restore would give). Every subject is erased again, the guards
// refuse them during the replay, a second run changes nothing, the ledger files hold no key;
// and a secret rotated after the backup is reported, not guessed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withDatabaseName } from '../src/db/databaseUrl.js';
import { createDb } from '../src/sql/db.js';
import { exportLedger } from '../src/worker/exportLedger.js';
import { expectPgError } from './helpers/fixtures.js';
import { admin, closeToOtherLogins, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const ledgerDir = mkdtempSync(join(tmpdir(), 'lethe-ledger-'));
const adminUrl = inject('adminUrl');
let live: TestDatabase;
const copies: string[] = [];
const pools: pg.Pool[] = [];

// Subjects 11..1210 exist. Erased: 11..610 by a request (erase), 611..910 by a request
// (delete), 911..1010 by a direct pii.erase_subjects call; 1211..1220 never existed.
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => String(from + i));
const eraseKeys = range(11, 610);
const deleteKeys = range(611, 910);
const directKeys = [...range(911, 1010), ...range(1211, 1220)];

function fixture(name: string): string {
  return readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
}

/** A copy of a database as it is now (all its sessions closed first): a backup, or its restore. */
async function copyDatabase(from: string, name: string): Promise<pg.Pool> {
  await admin(
    `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${from}' and pid <> pg_backend_pid()`,
  );
  await admin(`create database ${name} template ${from}`);
  copies.push(name);
  // lethe doctor must pass on the restore: no other file's hostile readers may connect to it.
  await closeToOtherLogins(name);
  const pool = new pg.Pool({ connectionString: withDatabaseName(adminUrl, name), max: 3 });
  pool.on('error', () => {});
  pools.push(pool);
  return pool;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function lethe(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DATABASE_URL: '', LETHE_LEDGER_DIR: '', ...env },
  });
}

function finished(child: ChildProcess): Promise<Run> {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

async function restoreCheck(url: string, dir = ledgerDir): Promise<Run & { report: any }> {
  const r = await finished(lethe(['--database-url', url, '--json', 'restore-check', '--ledger', dir]));
  return { ...r, report: r.stdout ? JSON.parse(r.stdout) : undefined };
}

/** Runs `lethe worker` until every request is finished and the ledger is copied, then stops it (SIGTERM). */
async function workUntilDone(
  pool: pg.Pool,
  url: string,
  env: Record<string, string>,
  args: string[] = [],
): Promise<Run> {
  const worker = lethe(['--database-url', url, 'worker', ...args], env);
  const out = finished(worker);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { rows } = await pool.query(
      `select (select count(*) from pii.requests where status in ('queued', 'running'))::int as open,
              (select unexported from pii.ledger_status())::int as unexported`,
    );
    if (rows[0].open === 0 && rows[0].unexported === 0) break;
    if (Date.now() > deadline || worker.exitCode !== null) {
      worker.kill('SIGKILL');
      throw new Error(`worker did not finish: ${JSON.stringify(rows[0])}\n${(await out).stderr}`);
    }
    await sleep(100);
  }
  worker.kill('SIGTERM');
  const r = await out;
  expect(r.code, r.stderr).toBe(0);
  return r;
}

const ledgerLines = () =>
  readdirSync(ledgerDir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(join(ledgerDir, f), 'utf8').split('\n').filter(Boolean));

/** Everything in the registered tables, as one digest: equal digests, no row changed. */
const contentDigest = async (pool: pg.Pool) =>
  (
    await pool.query(`select md5(string_agg(t, '|' order by t)) as d from (
      select c::text as t from app.customers c union all select e::text from app.events e union all
      select o::text from app.orders o union all select i::text from app.order_items i union all
      select l::text from app.loyalty_points l) x`)
  ).rows[0].d as string;

let backupName: string;
let restored: pg.Pool;
let restoredUrl: string;
let firstRun: Run & { report: any };

beforeAll(async () => {
  live = await createTestDatabase('restore');
  const client = await live.pool.connect();
  try {
    await client.query(fixture('crm.sql'));
    await client.query(fixture('crm_register.sql'));
    await client.query(`select set_config('lethe_test.bulk_customers', '1200', false)`);
    await client.query(fixture('requests_bulk.sql'));
    for (const t of ['app.customers', 'app.orders', 'app.events', 'app.loyalty_points'])
      await client.query(`select pii.set_guard($1, 'reject')`, [t]);
  } finally {
    client.release();
  }
  // The backup, taken before any erasure.
  backupName = `${live.name}_backup`;
  await (await copyDatabase(live.name, backupName)).end();
  pools.pop();

  await live.query(`select pii.request_erasure($1::text[], request_key => 'erase-600')`, [eraseKeys]);
  await live.query(`select pii.request_erasure($1::text[], request_key => 'delete-300', mode => 'delete')`, [
    deleteKeys,
  ]);
  await live.query(`select * from pii.erase_subjects($1::text[])`, [directKeys]);
  await workUntilDone(live.pool, live.url, {}, ['--ledger-dir', ledgerDir, '--chunk-size', '250']);

  // The restore: a new database from the backup.
  restoredUrl = withDatabaseName(adminUrl, `${live.name}_restored`);
  restored = await copyDatabase(backupName, `${live.name}_restored`);
}, 240_000);

afterAll(async () => {
  await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
  for (const name of copies.reverse())
    await admin(`drop database if exists ${name} with (force)`).catch(() => undefined);
  await live?.drop();
  rmSync(ledgerDir, { recursive: true, force: true });
});

describe('lethe worker --ledger-dir', () => {
  it('wrote one line per erased subject (1,010 with the 10 unknown keys), in order, each once', async () => {
    const entries = ledgerLines().map((l) => JSON.parse(l));
    expect(entries).toHaveLength(1010);
    expect(entries.map((e) => e.seq)).toEqual(range(1, 1010).map(Number));
    expect(entries.filter((e) => e.mode === 'delete')).toHaveLength(300);
    expect(entries.filter((e) => e.request_id === null)).toHaveLength(110);
    const { rows } = await live.query(`select * from pii.ledger_status()`);
    expect(rows[0]).toMatchObject({
      ledger_seq: '1010',
      exported_seq: '1010',
      unexported: '0',
      last_error: null,
      target: ledgerDir,
    });
  });

  it('holds no raw key or PII value: keyed hashes, ids and times only (grep)', async () => {
    const text = ledgerLines().join('\n');
    for (const needle of ['@example.com', 'First', 'Last', 'High Street', '+44', '"611"', ':611,', ':611}'])
      expect(text).not.toContain(needle);
    for (const line of ledgerLines()) {
      for (const [k, v] of Object.entries(JSON.parse(line) as Record<string, unknown>)) {
        if (k === 'seq') expect(typeof v).toBe('number');
        else if (k === 'scoped') expect(typeof v).toBe('boolean');
        else if (k === 'kind')
          expect(v).toBe('customers'); // the subject kind: the subject table's name
        else if (v !== null)
          expect(String(v)).toMatch(
            /^([0-9a-f]{16}|[0-9a-f]{64}|[0-9a-f-]{36}|erase|delete|return|\d{4}-\d\d-\d\dT[\d:.]+Z)$/,
          );
      }
    }
  });
});

describe('lethe restore-check', () => {
  it('finds every erased subject back in the restored database before the check', async () => {
    const { rows } = await restored.query(
      `select count(*)::int as n from app.customers where id between 11 and 1010 and email is not null`,
    );
    expect(rows[0].n).toBe(1000);
  });

  it('re-creates the tombstones and files one request per mode for the 1,000 subjects that are back', async () => {
    firstRun = await restoreCheck(restoredUrl);
    expect(firstRun.code, firstRun.stderr).toBe(0);
    expect(firstRun.report).toMatchObject({
      ledgerEntries: 1010,
      ledgerRestored: 1010,
      ledgerConflicts: 0,
      subjects: 1010,
      replayed: 1000,
      alreadyErased: 0,
      inProgress: 0,
      returned: 0,
      notPresent: 10,
      indeterminate: 0,
      tombstonesWritten: 1010,
    });
    expect(firstRun.report.requestIds).toHaveLength(2);
    const { rows } = await restored.query(
      `select mode, source, total::int, status from pii.requests where id = any ($1::uuid[]) order by mode`,
      [firstRun.report.requestIds],
    );
    expect(rows).toEqual([
      { mode: 'delete', source: 'restore-check', total: 300, status: 'queued' },
      { mode: 'erase', source: 'restore-check', total: 700, status: 'queued' },
    ]);
  });

  it('makes the guards refuse re-ingestion of those subjects while the replay is queued (PII01)', async () => {
    await expectPgError(
      restored.query(`update app.customers set email = 'back@example.com' where id = 100`),
      'PII01',
      /cannot be re-ingested/,
    );
    await expectPgError(
      restored.query(`insert into app.orders (id, customer_id, total, shipping_name) values (999001, 700, 1, 'Again')`),
      'PII01',
      /cannot be re-ingested/,
    );
    const { rows } = await restored.query(`select erased from pii.was_erased('1215')`);
    expect(rows[0].erased).toBe(true);
  });

  it('copied the ledger back, so both chains are intact in the restored database', async () => {
    expect((await restored.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
    const { rows } = await restored.query(`select seq::int from pii.ledger_status() s(seq)`);
    expect(rows[0].seq).toBe(1010);
  });

  it('erases every one of them again once the worker runs (verify_erasure empty), continuing the same ledger files', async () => {
    await workUntilDone(restored, restoredUrl, { LETHE_LEDGER_DIR: ledgerDir });
    const { rows: reqs } = await restored.query(
      `select status, residual_count from pii.requests where id = any ($1::uuid[])`,
      [firstRun.report.requestIds],
    );
    expect(reqs).toEqual([
      { status: 'done', residual_count: 0 },
      { status: 'done', residual_count: 0 },
    ]);
    for (const id of firstRun.report.requestIds)
      expect((await restored.query(`select * from pii.verify_erasure($1)`, [id])).rows).toEqual([]);
    const { rows } = await restored.query(
      `select count(*) filter (where email is null and status = 'DEACTIVATED')::int as erased, count(*)::int as left_
       from app.customers where id between 11 and 1010`,
    );
    expect(rows[0]).toEqual({ erased: 700, left_: 700 });
    const { rows: gone } = await restored.query(
      `select (select count(*) from app.events where customer_id between 11 and 1010)::int as events,
              (select count(*) from app.loyalty_points where customer_id between 11 and 1010)::int as loyalty`,
    );
    expect(gone[0]).toEqual({ events: 0, loyalty: 0 });
    // The replay's own erasures are in the ledger (and its files) too.
    expect(ledgerLines()).toHaveLength(2010);
    expect((await restored.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
  });

  it('is a no-op the second time: nothing replayed, no request, no row changed', async () => {
    const before = await contentDigest(restored);
    const { rows: n } = await restored.query(`select count(*)::int as n from pii.requests`);
    const second = await restoreCheck(restoredUrl);
    expect(second.code, second.stderr).toBe(0);
    expect(second.report).toMatchObject({
      ledgerEntries: 2010,
      ledgerRestored: 0,
      replayed: 0,
      alreadyErased: 1010,
      notPresent: 0,
      tombstonesWritten: 0,
      requestIds: [],
    });
    expect(await contentDigest(restored)).toBe(before);
    expect((await restored.query(`select count(*)::int as n from pii.requests`)).rows[0].n).toBe(n[0].n);
  });

  it('refuses a ledger directory whose entries were tampered with (22023, exit 2), changing nothing', async () => {
    const tampered = mkdtempSync(join(tmpdir(), 'lethe-ledger-bad-'));
    try {
      const { writeFileSync } = await import('node:fs');
      const lines = ledgerLines().map((l) => JSON.parse(l));
      lines[5].mode = 'return';
      writeFileSync(
        join(tampered, 'erasure-ledger-2026-12-01.jsonl'),
        lines.map((e) => JSON.stringify(e)).join('\n') + '\n',
      );
      const pool = await copyDatabase(backupName, `${live.name}_tampered`);
      const r = await restoreCheck(withDatabaseName(adminUrl, `${live.name}_tampered`), tampered);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/ledger entry seq 6 does not continue the chain .*SQLSTATE 22023/);
      expect((await pool.query(`select count(*)::int as n from pii_internal.tombstones`)).rows[0].n).toBe(0);
    } finally {
      rmSync(tampered, { recursive: true, force: true });
    }
  });
});

describe('pii.restore_check refuses malformed ledger entries by position (22023), changing nothing', () => {
  const variants: [string, (e: any) => void][] = [
    ['an uppercase subject hash', (e) => (e.subject_hash = e.subject_hash.toUpperCase())],
    ['a subject hash one digit short', (e) => (e.subject_hash = e.subject_hash.slice(1))],
    ['an entry hash with a non-hex digit', (e) => (e.entry_hash = 'g' + e.entry_hash.slice(1))],
    ['no prev_hash key', (e) => delete e.prev_hash],
    ['a seq with a leading zero', (e) => (e.seq = `0${e.seq}`)],
    ['a request id with a hyphen moved', (e) => (e.request_id = e.request_id.replace(/^(\w{7})(\w)-/, '$1-$2'))],
    [
      'seven fraction digits',
      (e) => (e.erased_at = e.erased_at.replace(/Z$/, '1Z').replace(/\.(\d+)1Z$/, '.1234567Z')),
    ],
    ['an identifier hash that is not hex', (e) => (e.identifier_hashes = ['z'.repeat(64)])],
    ['an identifier hash that is a number', (e) => (e.identifier_hashes = [12])],
    ['scoped as a string', (e) => (e.scoped = 'false')],
  ];
  for (const [what, change] of variants) {
    it(what, async () => {
      const entries = ledgerLines().map((l) => JSON.parse(l));
      const i = entries.findIndex((e) => e.request_id !== null);
      change(entries[i]);
      const count = async () =>
        (
          await restored.query(
            `select (select count(*) from pii_internal.tombstones) + (select count(*) from pii.requests) as n`,
          )
        ).rows[0].n;
      const before = await count();
      await expectPgError(
        restored.query(`select * from pii.restore_check($1::jsonb)`, [JSON.stringify(entries)]),
        '22023',
        new RegExp(`ledger entry #${i + 1} is malformed`),
      );
      expect(await count()).toBe(before);
    });
  }
});

describe('lethe restore-check after the HMAC secret was rotated after the backup', () => {
  it('reports the subjects hashed under the new secret as indeterminate (exit 1) and replays them once the secret is carried over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lethe-ledger-rot-'));
    try {
      // A live database from the same backup: erase 3 subjects, back it up, rotate the secret, erase 5 more.
      const rotLive = await copyDatabase(backupName, `${live.name}_rot`);
      await rotLive.query(`select * from pii.erase_subjects(array['1101', '1102', '1103'])`);
      await (await copyDatabase(`${live.name}_rot`, `${live.name}_rot_backup`)).end();
      const { rows: before } = await rotLive.query(`select pii.secret_id() as id`);
      await rotLive.query(`with k as (select decode(md5('rotated') || md5('rotated-2') || md5('3') || md5('4'), 'hex') as k)
        update pii_internal.secret set inner_key = (select k from k), outer_key = (select decode(md5('o1') || md5('o2') || md5('o3') || md5('o4'), 'hex'))`);
      const { rows: after } = await rotLive.query(`select pii.secret_id() as id`);
      expect(after[0].id).not.toBe(before[0].id);
      await rotLive.query(`select * from pii.erase_subjects(array['1104', '1105', '1106', '1107', '1108'])`);
      expect(await exportLedger(createDb(rotLive), dir)).toBe(8);

      const rotRestored = await copyDatabase(`${live.name}_rot_backup`, `${live.name}_rot_restored`);
      const url = withDatabaseName(adminUrl, `${live.name}_rot_restored`);
      const r = await restoreCheck(url, dir);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/5 subject\(s\) were hashed under another HMAC secret/);
      expect(r.report).toMatchObject({
        subjects: 3,
        alreadyErased: 3,
        replayed: 0,
        indeterminate: 5,
        ledgerRestored: 5,
      });
      const { rows: back } = await rotRestored.query(
        `select count(*)::int as n from app.customers where id between 1104 and 1108 and email is not null`,
      );
      expect(back[0].n).toBe(5);

      // The documented way out: carry the live database's current secret over, run again.
      const { rows: secret } = await rotLive.query(`select inner_key, outer_key from pii_internal.secret`);
      await rotRestored.query(`update pii_internal.secret set inner_key = $1, outer_key = $2`, [
        secret[0].inner_key,
        secret[0].outer_key,
      ]);
      const again = await restoreCheck(url, dir);
      expect(again.report).toMatchObject({ replayed: 5, indeterminate: 3 });
      expect(again.code).toBe(1);
      // Entries made under the old secret are still linked: the chains survive the rotation.
      expect((await rotLive.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
      expect((await rotRestored.query(`select * from pii.verify_audit_chain()`)).rows).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lethe doctor', () => {
  it('says ok for the restored database once the replay is copied (exit 0)', async () => {
    const r = await finished(lethe(['--database-url', restoredUrl, 'doctor']));
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /^ok\s+evidence\s+audit and ledger chains intact; 2,?010 of 2,?010 ledger entries copied to /m,
    );
  });

  it('names the broken link after an audit row was deleted with the triggers disabled (exit 1)', async () => {
    const name = `${live.name}_doctor`;
    const pool = await copyDatabase(`${live.name}_restored`, name);
    await pool.query(`alter table pii.audit disable trigger user;
      delete from pii.audit where chain_seq = (select min(chain_seq) from pii.audit where action = 'restore_check');
      alter table pii.audit enable always trigger audit_no_update_delete;`);
    const r = await finished(lethe(['--database-url', withDatabaseName(adminUrl, name), '--json', 'doctor']));
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(false);
    expect(report.checks.filter((c: { check: string }) => c.check === 'evidence')).toEqual([
      expect.objectContaining({
        status: 'fail',
        detail: expect.stringMatching(/^audit chain: entries (\d+) to \1 are missing \(entry \d+\)$/),
      }),
    ]);
  });

  it('warns about a database whose ledger is not copied anywhere', async () => {
    const name = `${live.name}_uncopied`;
    const pool = await copyDatabase(backupName, name);
    await pool.query(`select * from pii.erase_subjects(array['1150'])`);
    const uncopied = await finished(lethe(['--database-url', withDatabaseName(adminUrl, name), 'doctor']));
    expect(uncopied.stdout).toMatch(/^warn\s+evidence\s+the erasure ledger is not copied outside the database: /m);
    expect(uncopied.stdout).toMatch(/fix: run lethe worker --ledger-dir DIR/);
  });
});
