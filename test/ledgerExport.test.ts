// exportLedger and runWorker({ ledgerDir }): the external copy of pii.erasure_ledger gets
// each entry once, in order, fsynced to one file per day; a line cut short by a crash is
// repaired; a directory the database cannot continue (it was restored from a backup) or
// cannot be written is an error the worker logs and pii.ledger_status() shows, never silence.
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorker } from '../src/api/index.js';
import { ledgerFileName, readLedgerEntries } from '../src/ledger/ledgerDir.js';
import { createDb, type LetheDb } from '../src/sql/db.js';
import { ledgerStatus } from '../src/sql/ledgerStatus.js';
import { exportLedger, LedgerExportError } from '../src/worker/exportLedger.js';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let kdb: LetheDb;
const dirs: string[] = [];

const newDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'lethe-export-'));
  dirs.push(d);
  return d;
};
const lines = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean));

beforeAll(async () => {
  db = await createTestDatabase('export');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  kdb = createDb(db.pool);
  await db.query(`select * from pii.erase_subjects(array['11', '12', '13'])`);
});
afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await db?.drop();
});

describe('exportLedger', () => {
  it("writes every entry once to today's file, in order, and records how far it got", async () => {
    const dir = newDir();
    expect(await exportLedger(kdb, dir)).toBe(3);
    expect(await exportLedger(kdb, dir)).toBe(0);
    await db.query(`select * from pii.erase_subjects(array['14'])`);
    expect(await exportLedger(kdb, dir)).toBe(1);
    expect(readdirSync(dir).filter((f) => f.endsWith('.jsonl'))).toEqual([ledgerFileName(new Date())]);
    expect(lines(dir).map((l) => JSON.parse(l).seq)).toEqual([1, 2, 3, 4]);
    const { rows } = await db.query(`select entry::text as line from pii.ledger_entries_after(0) order by seq`);
    expect(lines(dir)).toEqual(rows.map((r) => r.line));
    expect(await ledgerStatus(kdb)).toMatchObject({ ledgerSeq: 4, exportedSeq: 4, unexported: 0, target: dir });
  });

  it('repairs a line cut short by a crash and writes that entry again, once', async () => {
    const dir = newDir();
    await exportLedger(kdb, dir);
    const file = join(dir, ledgerFileName(new Date()));
    const whole = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    // The crash: entry 4 half written, no newline.
    writeFileSync(file, whole.slice(0, 3).join('\n') + '\n' + whole[3]!.slice(0, 40));
    expect(await exportLedger(kdb, dir)).toBe(1);
    expect(lines(dir)).toEqual(whole);
    expect((await readLedgerEntries(dir)).length).toBe(4);
  });

  it('refuses to continue a directory that is ahead of the database (restored from a backup)', async () => {
    const dir = newDir();
    await exportLedger(kdb, dir);
    const last = JSON.parse(lines(dir).at(-1)!);
    appendFileSync(join(dir, ledgerFileName(new Date())), JSON.stringify({ ...last, seq: last.seq + 1 }) + '\n');
    await expect(exportLedger(kdb, dir)).rejects.toThrow(LedgerExportError);
    await expect(exportLedger(kdb, dir)).rejects.toThrow(/which this database does not hold .*lethe restore-check/);
  });
});

describe('runWorker({ ledgerDir })', () => {
  it('copies the entries of the erasures it runs, and those of direct calls', async () => {
    const dir = newDir();
    const w = await runWorker({ connectionString: db.url, ledgerDir: dir, pollInterval: 100, log: () => {} });
    try {
      const { rows } = await db.query(`select pii.request_erasure(array['15', '16']) as id`);
      await db.query(`select * from pii.erase_subjects(array['17'])`);
      for (let i = 0; i < 200 && lines(dir).length < 7; i++) await sleep(50);
      const entries = lines(dir).map((l) => JSON.parse(l));
      expect(entries.filter((e) => e.request_id === rows[0].id)).toHaveLength(2);
      expect(entries.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    } finally {
      await w.stop();
    }
  });

  it('logs an error and records it in pii.ledger_status() when the directory cannot be continued', async () => {
    const dir = newDir();
    writeFileSync(
      join(dir, ledgerFileName(new Date())),
      JSON.stringify({ seq: 999, entry_hash: 'ab'.repeat(32) }) + '\n',
    );
    const logs: string[] = [];
    const w = await runWorker({
      connectionString: db.url,
      ledgerDir: dir,
      pollInterval: 100,
      log: (level, m) => logs.push(`${level}: ${m}`),
    });
    try {
      for (let i = 0; i < 100 && !logs.some((l) => l.startsWith('error: ledger')); i++) await sleep(50);
      expect(logs).toContainEqual(expect.stringMatching(/^error: ledger copy to .* failed: .*ends with entry 999/));
      const status = await ledgerStatus(kdb);
      expect(status.lastError).toMatch(/ends with entry 999/);
      expect(status.lastErrorAt).toBeInstanceOf(Date);
    } finally {
      await w.stop();
    }
    // The next successful copy clears it.
    await exportLedger(kdb, newDir());
    expect((await ledgerStatus(kdb)).lastError).toBeNull();
  });

  it('does not start when the ledger directory cannot be written', async () => {
    // A path under a regular file: no directory can be made there, whoever runs the test.
    const notADir = join(newDir(), 'a-file');
    writeFileSync(notADir, '');
    await expect(
      runWorker({ connectionString: db.url, ledgerDir: join(notADir, 'ledger'), log: () => {} }),
    ).rejects.toThrow(/ENOTDIR|EEXIST/);
  });
});

describe('pii.ledger_status', () => {
  it('counts erasures that never reached the ledger (a tombstone marked erased with no audit row)', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`insert into pii_internal.tombstones (subject_hash) values (sha256('x'))`);
      await client.query(
        `update pii_internal.tombstones set erased_at = now(), erased_xact = pg_current_xact_id() where subject_hash = sha256('x')`,
      );
      await client.query('commit');
    } finally {
      client.release();
    }
    expect((await ledgerStatus(kdb)).unledgered).toBe(1);
  });
});
