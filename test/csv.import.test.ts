// importCsv against a real PostgreSQL: 50,000-row files streamed through COPY into one
// request, and every malformed case refused with row numbers and nothing queued.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLethe, CsvRejectedError, type Lethe } from '../src/api/index.js';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let lethe: Lethe;
const dir = mkdtempSync(join(tmpdir(), 'lethe-csv-'));

beforeAll(async () => {
  db = await createTestDatabase('csv_import');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  // 50,000 more customers (profile only) so big files have subjects to match.
  await db.query(
    `insert into app.customers (id, email) select i, 'c' || i || '@example.com' from generate_series(100001, 150000) i`,
  );
  lethe = createLethe({ connectionString: db.url });
});
afterAll(async () => {
  await lethe?.close();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

let n = 0;
function csvFile(text: string | Buffer): string {
  const path = join(dir, `f${++n}.csv`);
  writeFileSync(path, text);
  return path;
}

/** Nothing of a refused file may reach the database. */
async function footprint() {
  const { rows } = await db.query(`
    select (select count(*) from pii.requests)::int as requests,
           (select count(*) from pii.import_rows)::int as staged,
           (select count(*) from graphile_worker.jobs)::int as jobs,
           (select count(*) from pii_internal.tombstones)::int as tombstones`);
  return rows[0];
}

async function rejected(
  path: string | Readable,
  opts: Parameters<Lethe['importCsv']>[1] = {},
): Promise<CsvRejectedError> {
  const before = await footprint();
  const err = await lethe.importCsv(path, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CsvRejectedError);
  expect(await footprint()).toEqual(before);
  return err as CsvRejectedError;
}

describe('50,000-row files', () => {
  it('imports a file into one request: counts, unmatched rows by hash, duplicates', async () => {
    // Rows 2..50001: 49,990 existing customers, 5 unknown ids, 5 duplicates.
    const ids = Array.from({ length: 49_990 }, (_, i) => String(100_001 + i));
    const unknown = ['900001', '900002', '900003', '900004', '900005'];
    const lines = [...ids, ...unknown, ...ids.slice(0, 5)];
    const path = csvFile(`customer_id\n${lines.join('\n')}\n`);

    const report = await lethe.importCsv(path, { requestKey: 'csv-50k' });
    expect(report).toMatchObject({
      status: 'queued',
      rowsRead: 50_000,
      rowsImported: 50_000,
      rejected: 0,
      subjects: 49_995,
      matched: 49_990,
      unmatched: 5,
      duplicates: 5,
    });
    // Unmatched rows are reported by line number (header = line 1) and keyed hash, never key.
    expect(report.unmatchedRows.map((u) => u.row)).toEqual([49_992, 49_993, 49_994, 49_995, 49_996]);
    expect(report.unmatchedRows.every((u) => /^[0-9a-f]{64}$/.test(u.subjectHash))).toBe(true);
    expect(JSON.stringify(report)).not.toContain('900001');
    expect(report.rowsPerSecond).toBeGreaterThan(0);

    const { rows } = await db.query(`select count(*)::int as n from pii.import_rows`);
    expect(rows[0].n).toBe(0); // staging emptied in the same transaction
    const { rows: jobs } = await db.query(`select count(*)::int as n from graphile_worker.jobs where key = $1`, [
      `lethe:request:${report.requestId}`,
    ]);
    expect(jobs[0].n).toBe(1);
    const { rows: src } = await db.query(`select source from pii.requests where id = $1`, [report.requestId]);
    expect(src[0].source).toBe('csv');

    // The same request key returns the same request; nothing new is created.
    const again = await lethe.importCsv(path, { requestKey: 'csv-50k' });
    expect(again.requestId).toBe(report.requestId);
    expect((await db.query(`select count(*)::int as n from pii.requests`)).rows[0].n).toBe(1);
  });

  it('rejects the whole file for one bad row far past the first 20, reporting its row', async () => {
    const lines = Array.from({ length: 50_000 }, (_, i) => String(100_001 + i));
    lines[39_998] = '"100001"'; // line 40000
    const err = await rejected(csvFile(`subject_key\n${lines.join('\n')}\n`));
    expect(err).toMatchObject({
      stage: 'file',
      rejected: 1,
      rowsRead: 50_000,
      rows: [{ row: 40_000, reason: 'column 1: quoted values are not allowed' }],
    });
    expect(err.message).toMatch(/1 of 50000 rows are invalid; the whole file was rejected and nothing was queued/);
  });

  it('with skipInvalid imports the valid rows and lists the rejected ones with reasons', async () => {
    const lines = Array.from({ length: 50_000 }, (_, i) => `${100_001 + i},1`);
    lines[4] = ',1'; // line 6: empty key
    lines[29_999] = '100001,maybe'; // line 30001
    lines[49_999] = '100002'; // line 50001: one column
    const report = await lethe.importCsv(csvFile(`subject_key,erase\n${lines.join('\n')}`), { skipInvalid: true });
    expect(report).toMatchObject({
      rowsRead: 50_000,
      rowsImported: 49_997,
      rejected: 3,
      subjects: 49_997,
      matched: 49_997,
      unmatched: 0,
    });
    expect(report.rejectedRows).toEqual([
      { row: 6, reason: 'empty subject key' },
      { row: 30_001, reason: 'erase flag must be true or 1' },
      { row: 50_001, reason: 'expected 2 columns, found 1' },
    ]);
  });
});

describe('malformed files are refused before anything is queued', () => {
  it.each([
    ['an empty file', '', 'header', /empty or its first line is blank/],
    ['no header row', '42\n43\n', 'header', /column 1: unknown column; .*header row missing/],
    ['an unknown column', 'subject_key,email\n1,a@b.example\n', 'header', /column 2: unknown column "email"/],
    ['a quoted header', '"customer_id"\n1\n', 'header', /quoted header names are not allowed/],
    ['a header and no rows', 'customer_id\n', 'preview', /no data rows/],
    ['a header and blank lines', 'customer_id\n\n\n', 'preview', /no data rows/],
  ])('%s', async (_name, text, stage, reason) => {
    const err = await rejected(csvFile(text));
    expect(err.stage).toBe(stage);
    expect(err.rows[0]!.reason).toMatch(reason);
  });

  it('reports every error among the first 20 rows with its row number', async () => {
    const text = [
      'customer_id,core_sm_brand_id,erase',
      '1,1,true', // 2
      '"2",1,true', // 3 quoted
      ',1,true', // 4 empty key
      '4,,1', // 5 empty scope
      '5,1,no', // 6 bad flag
      '6,1', // 7 too few columns
      '7,1,true,extra', // 8 too many columns
      '8,1,1', // 9
    ].join('\r\n');
    const previews: unknown[] = [];
    const err = await rejected(csvFile(text), { onPreview: (p) => previews.push(p) });
    expect(err.stage).toBe('preview');
    expect(err.rows).toEqual([
      { row: 3, reason: 'column 1: quoted values are not allowed' },
      { row: 4, reason: 'empty subject key' },
      { row: 5, reason: 'empty scope' },
      { row: 6, reason: 'erase flag must be true or 1' },
      { row: 7, reason: 'expected 3 columns, found 2' },
      { row: 8, reason: 'expected 3 columns, found 4' },
    ]);
    expect(previews).toEqual([{ rows: 8, errors: err.rows }]);
  });

  it('refuses control characters and invalid UTF-8', async () => {
    const bytes = Buffer.concat([Buffer.from('subject_key\n1\n'), Buffer.from([0x34, 0xff, 0x32, 0x0a])]);
    const err = await rejected(csvFile(bytes));
    expect(err.rows).toEqual([{ row: 3, reason: 'column 1: control character or invalid UTF-8' }]);
  });

  it('refuses a binary file or one without line breaks', async () => {
    const err = await rejected(csvFile(`subject_key\n${'9'.repeat(70_000)}\n`));
    expect(err.rows).toEqual([{ row: 2, reason: expect.stringMatching(/^line longer than 65536 bytes/) }]);
    expect(err.message).toMatch(/^row 2: line longer/);
  });

  it('refuses a file whose keys do not fit the key column type, naming the CSV row', async () => {
    const before = await footprint();
    const err = await lethe.importCsv(csvFile('subject_key\n1\n\n2\nnot-a-number\n'), {}).catch((e: unknown) => e);
    expect(err).toMatchObject({
      name: 'LetheError',
      code: '22P02',
      message: 'row 5: subject key is not a valid bigint',
    });
    expect(await footprint()).toEqual(before);
  });

  it('refuses a scope column in an unscoped install', async () => {
    await expect(lethe.importCsv(csvFile('subject_key,scope\n1,1\n'))).rejects.toMatchObject({
      code: '22023',
      message: expect.stringMatching(/not scoped/),
    });
  });

  it('fails cleanly for a missing file', async () => {
    await expect(lethe.importCsv(join(dir, 'nope.csv'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('accepted variants', () => {
  it('reads BOM, CRLF, upper-case headers, spaces, blank lines, no final newline and a stream', async () => {
    const text = '\ufeffUSER_EXT_ID , Erase\r\n 3 , TRUE\r\n\r\n4,1';
    const report = await lethe.importCsv(Readable.from([Buffer.from(text)]), { source: 'csv-test' });
    expect(report).toMatchObject({ rowsRead: 2, rowsImported: 2, subjects: 2, matched: 2, rejected: 0 });
    const items = await lethe.getRequestItems(report.requestId);
    expect(items.map((i) => i.sourceRow)).toEqual([2, 4]);
  });

  it('lets a pii_operator login role import (COPY into the staging table)', async () => {
    await db.query(
      `drop role if exists lethe_csv_op; create role lethe_csv_op login password 'pw' in role pii_operator`,
    );
    const u = new URL(db.url);
    u.username = 'lethe_csv_op';
    u.password = 'pw';
    const op = createLethe({ connectionString: u.toString() });
    try {
      const report = await op.importCsv(csvFile('customer_id\n5\n6\n'));
      expect(report).toMatchObject({ subjects: 2, matched: 2 });
    } finally {
      await op.close();
    }
    await db.query(`drop role if exists lethe_nobody_csv; create role lethe_nobody_csv login password 'pw'`);
    u.username = 'lethe_nobody_csv';
    const nobody = createLethe({ connectionString: u.toString() });
    try {
      await expect(nobody.importCsv(csvFile('customer_id\n7\n'))).rejects.toMatchObject({
        name: 'LetheError',
        code: '42501',
      });
    } finally {
      await nobody.close();
    }
  });
});

describe('scoped installs', () => {
  it("imports (key, scope) pairs under Smartico's core_sm_brand_id", async () => {
    const scoped = await createTestDatabase('csv_scoped');
    const l = createLethe({ connectionString: scoped.url });
    try {
      await loadFixture(scoped, 'brands_scoped.sql');
      await scoped.query(
        `select pii.register_subject_table('casino.players', 'player_id', scope_column => 'brand_id')`,
      );
      const report = await l.importCsv(csvFile('user_ext_id,core_sm_brand_id\npl-1,2\npl-1,9\npl-1,2\n'));
      expect(report).toMatchObject({
        subjects: 2,
        matched: 1,
        unmatched: 1,
        duplicates: 1,
        unmatchedRows: [{ row: 3 }],
      });
      // A file mixing rows with and without a scope cannot be expressed: the column is all or nothing.
      const err = await l.importCsv(csvFile('user_ext_id\npl-1\n')).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '22023', message: expect.stringMatching(/scopes are required/) });
    } finally {
      await l.close();
      await scoped.drop();
    }
  });
});
