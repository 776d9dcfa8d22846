// Item 7: a privacy team's CSV of 1,000,000 subject keys (at scale 1).
//   - raw COPY throughput into the staging table pii.import_rows, alternating with the same
//     COPY into an unindexed unlogged table of the same shape (what COPY costs at best);
//   - then the whole upload once through Lethe's importer (src/csv importCsv: parse, check,
//     COPY, and pii.request_erasure_from_import turning the rows into one request).
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { importCsv } from '../../src/csv/importCsv.js';
import { createPool } from '../../src/sql/db.js';
import { median, peakRss, roundOrder, timed } from './stats.js';

export interface CsvImportResult {
  rows: number;
  pairs: number;
  staging: number[];
  floor: number[];
  stagingMedian: number;
  floorMedian: number;
  /** Indexes on pii.import_rows in this build. */
  stagingIndexes: number;
  /** The importer end to end (undefined when it failed; see importerError). */
  importer?: {
    seconds: number;
    rowsPerSecond: number;
    stagingSeconds?: number;
    stagingRowsPerSecond?: number;
    subjects: number;
    matched: number;
    /** Peak resident memory of the bench process while the importer ran (it runs in it). */
    peakRssMiB?: number;
  };
  importerError?: string;
}

function copyLines(importId: string, n: number): string[] {
  const chunks: string[] = [];
  let buf = '';
  for (let i = 1; i <= n; i++) {
    buf += `${importId}\t${i}\t${i}\t\\N\n`;
    if (buf.length > 256 * 1024) {
      chunks.push(buf);
      buf = '';
    }
  }
  if (buf) chunks.push(buf);
  return chunks;
}

export async function benchCsvImport(
  db: pg.Client,
  url: string,
  opts: { rows: number; pairs: number; log: (s: string) => void },
): Promise<CsvImportResult> {
  const { log } = opts;
  await db.query(`create unlogged table if not exists bench.import_rows_floor (import_id uuid not null, row_number bigint not null,
                    subject_key text not null, scope text)`);
  const importId = randomUUID();
  const chunks = copyLines(importId, opts.rows);
  const copy = async (table: string) => {
    await db.query(`truncate ${table}`);
    await db.query('checkpoint');
    return (
      await timed(() =>
        pipeline(
          Readable.from(chunks),
          db.query(copyFrom(`copy ${table} (import_id, row_number, subject_key, scope) from stdin`)),
        ),
      )
    ).seconds;
  };
  log(`csv: COPY of ${opts.rows} keys into pii.import_rows`);
  await copy('pii.import_rows');
  await copy('bench.import_rows_floor');
  const staging: number[] = [];
  const floor: number[] = [];
  for (let round = 0; round < opts.pairs; round++) {
    for (const side of roundOrder(['staging', 'floor'] as const, round)) {
      const s = await copy(side === 'staging' ? 'pii.import_rows' : 'bench.import_rows_floor');
      (side === 'staging' ? staging : floor).push(s);
      log(`round ${round + 1}/${opts.pairs}: COPY ${side.padEnd(7)} ${(opts.rows / s / 1000).toFixed(0)}k rows/s`);
    }
  }
  await db.query('truncate pii.import_rows, bench.import_rows_floor');

  const result: CsvImportResult = {
    rows: opts.rows,
    pairs: opts.pairs,
    staging,
    floor,
    stagingMedian: median(staging),
    floorMedian: median(floor),
    stagingIndexes: Number(
      (await db.query<{ n: string }>(`select count(*) as n from pg_index where indrelid = 'pii.import_rows'::regclass`))
        .rows[0]!.n,
    ),
  };

  log(`csv: the importer (src/csv importCsv) on a ${opts.rows}-row file, end to end`);
  const pool = createPool({ connectionString: url, max: 2, application_name: 'lethe-bench-import' });
  const dir = mkdtempSync(join(tmpdir(), 'lethe-bench-'));
  const file = join(dir, 'erase.csv');
  try {
    // A file on disk, as the CLI's `lethe import` reads it.
    const parts: string[] = ['customer_id\n'];
    for (let i = 1; i <= opts.rows; i += 10_000) {
      const lines: string[] = [];
      for (let k = i; k < Math.min(i + 10_000, opts.rows + 1); k++) lines.push(String(k));
      parts.push(`${lines.join('\n')}\n`);
    }
    writeFileSync(file, parts.join(''));
    const { peakRssMiB, value: report } = await peakRss(() => importCsv(pool, file, { source: 'bench' }));
    const r = report as typeof report & { stagingSeconds?: number; stagingRowsPerSecond?: number };
    result.importer = {
      seconds: r.seconds,
      rowsPerSecond: r.rowsPerSecond,
      stagingSeconds: r.stagingSeconds,
      stagingRowsPerSecond: r.stagingRowsPerSecond,
      subjects: r.subjects,
      matched: r.matched,
      peakRssMiB,
    };
    log(
      `csv: importer ${r.rowsRead} rows in ${r.seconds.toFixed(2)} s` +
        (r.stagingSeconds ? ` (staged in ${r.stagingSeconds.toFixed(2)} s)` : '') +
        `, peak RSS ${peakRssMiB.toFixed(0)} MiB`,
    );
  } catch (err) {
    result.importerError = (err as Error).message;
    log(`csv: importer failed: ${result.importerError}`);
  } finally {
    await pool.end();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}
