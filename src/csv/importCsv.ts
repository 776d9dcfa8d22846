// CSV → one erasure request, in one pass over the file:
//   1. the header and the first PREVIEW_ROWS data rows are read and checked before
//      anything touches the database (a wrong file fails in milliseconds, nothing queued);
//   2. in one transaction, the whole file streams through csv-parse into COPY
//      pii.import_rows (never an INSERT per row), every row checked on the way;
//   3. a file with an invalid row is rolled back whole, unless skipInvalid; otherwise
//      pii.request_erasure_from_import turns the staged rows into one request and the
//      transaction commits: the request, its items and its job appear together.
// The matched/unmatched/duplicate counts are the database's, read back afterwards.
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { copyImportRows, encodeCopyRow } from '../sql/copyImportRows.js';
import { createDb, dbOnClient } from '../sql/db.js';
import { toLetheError } from '../sql/errors.js';
import type { ErasureMode } from '../sql/requestErasure.js';
import { requestErasureFromImport } from '../sql/requestErasureFromImport.js';
import { requestItems } from '../sql/requestItems.js';
import { type RequestState, requestStatus } from '../sql/requestStatus.js';
import { checkRow, type CsvLayout, isBlankLine, PREVIEW_ROWS, type RowError } from './format.js';
import { checkHead, headErrors } from './preview.js';
import { type CsvInput, CsvSyntaxError, openInput, parseToChunks, toSyntaxError } from './reader.js';

export interface ImportCsvOptions {
  /** Import the valid rows and report the others, instead of rejecting the file. */
  skipInvalid?: boolean;
  requestKey?: string;
  /** Recorded on the request; 'csv' by default. */
  source?: string;
  mode?: ErasureMode;
  dueAt?: Date;
  /** Subject kind of every row (else the file's kind column; may be omitted when the install has one kind). */
  kind?: string;
  /** How many unmatched and rejected rows the report lists (counts are always complete). Default 1000. */
  listLimit?: number;
  /** Called once the header and first rows are checked, before the database is touched. */
  onPreview?: (preview: { rows: number; errors: RowError[] }) => void;
  /** Called every few thousand rows while streaming. */
  onProgress?: (progress: ImportProgress) => void;
}

export interface ImportProgress {
  /** staging: streaming the file into the staging table; request: the database is making the request of it. */
  phase: 'staging' | 'request';
  rowsRead: number;
  /** Bytes of the lines parsed so far (what the file stream has read runs ahead of it). */
  bytesDone: number;
  totalBytes: number | undefined;
}

export interface ImportReport {
  requestId: string;
  status: RequestState;
  /** Data rows read (the header and blank lines are not rows). */
  rowsRead: number;
  /** Rows staged and turned into the request. */
  rowsImported: number;
  rejected: number;
  rejectedRows: RowError[];
  /** Distinct subjects in the request. */
  subjects: number;
  matched: number;
  unmatched: number;
  duplicates: number;
  /** Unmatched subjects by CSV row and keyed hash (never the key), up to listLimit. */
  unmatchedRows: Array<{ row: number | null; subjectHash: string }>;
  /** Time from opening the file to the commit, and rows read per second over it. */
  seconds: number;
  rowsPerSecond: number;
  /** Time to stream the file into the staging table (parse + COPY), and rows per second over it. */
  stagingSeconds: number;
  stagingRowsPerSecond: number;
}

/** The file was refused: nothing was queued. `rows` holds the reasons (up to listLimit). */
export class CsvRejectedError extends Error {
  override readonly name = 'CsvRejectedError';
  constructor(
    message: string,
    readonly stage: 'header' | 'preview' | 'file',
    readonly rows: RowError[],
    readonly rejected: number,
    readonly rowsRead: number,
  ) {
    super(message);
  }
}

const PROGRESS_EVERY = 8192;
// COPY data is sent in chunks of about this many characters: one CopyData message per
// row would cost more than parsing it.
const COPY_CHUNK_CHARS = 256 * 1024;

export async function importCsv(
  pool: pg.Pool,
  source: string | Readable,
  opts: ImportCsvOptions = {},
): Promise<ImportReport> {
  const started = performance.now();
  const listLimit = opts.listLimit ?? 1000;
  const input = await openInput(source);
  try {
    const layout = await preview(input, opts, listLimit);
    const state = new ImportState(listLimit);
    const { requestId, stagingSeconds } = await stageAndRequest(pool, input, layout, state, opts, started);
    const seconds = (performance.now() - started) / 1000;

    // No db.destroy() afterwards: Kysely would end the pool, which is the caller's.
    const db = createDb(pool);
    const status = await requestStatus(db, requestId);
    const unmatched =
      status.unmatched > 0 ? await requestItems(db, requestId, { matched: false, limit: listLimit }) : [];
    return {
      requestId,
      status: status.status,
      rowsRead: state.rowsRead,
      rowsImported: state.staged,
      rejected: state.rejected,
      rejectedRows: state.rejectedRows,
      subjects: status.total,
      matched: status.matched,
      unmatched: status.unmatched,
      duplicates: status.duplicates,
      unmatchedRows: unmatched.map((i) => ({ row: i.sourceRow, subjectHash: i.subjectHash })),
      seconds,
      rowsPerSecond: seconds > 0 ? Math.round(state.rowsRead / seconds) : state.rowsRead,
      stagingSeconds,
      stagingRowsPerSecond: stagingSeconds > 0 ? Math.round(state.rowsRead / stagingSeconds) : state.rowsRead,
    };
  } finally {
    input.stream.destroy();
  }
}

/** Checks the header and the first PREVIEW_ROWS data rows; returns the layout or throws CsvRejectedError. */
async function preview(input: CsvInput, opts: ImportCsvOptions, listLimit: number): Promise<CsvLayout> {
  const head = await checkHead(input);
  if (head.syntaxError) {
    const errors = [head.syntaxError];
    opts.onPreview?.({ rows: 0, errors });
    throw new CsvRejectedError(
      `row ${head.syntaxError.row}: ${head.syntaxError.reason}; nothing was imported`,
      'preview',
      errors,
      1,
      0,
    );
  }
  if (!head.header.ok) {
    const errors = head.header.errors;
    opts.onPreview?.({ rows: 0, errors });
    throw new CsvRejectedError('the header row is invalid; nothing was imported', 'header', errors, errors.length, 0);
  }
  if (head.rows.length === 0) {
    const errors = [{ row: 2, reason: 'no data rows after the header' }];
    opts.onPreview?.({ rows: 0, errors });
    throw new CsvRejectedError('the file has a header but no data rows; nothing was imported', 'preview', errors, 0, 0);
  }
  const errors = headErrors(head);
  opts.onPreview?.({ rows: head.rows.length, errors: [...errors] });
  if (errors.length > 0 && !opts.skipInvalid) {
    throw new CsvRejectedError(
      `the first ${PREVIEW_ROWS} rows have ${errors.length} invalid row(s); nothing was imported`,
      'preview',
      errors.slice(0, listLimit),
      errors.length,
      head.rows.length,
    );
  }
  return head.header.layout;
}

/** Counters and the rows listed in the report. */
class ImportState {
  rowsRead = 0;
  staged = 0;
  rejected = 0;
  rejectedRows: RowError[] = [];

  constructor(private readonly listLimit: number) {}

  /** Checks one data record; returns the COPY line for it, or undefined when it is not staged. */
  check(fields: string[], line: number, layout: CsvLayout, importId?: string): string | undefined {
    if (isBlankLine(fields)) return undefined;
    this.rowsRead++;
    const r = checkRow(fields, layout);
    if (!r.ok) {
      this.rejected++;
      if (this.rejectedRows.length < this.listLimit) this.rejectedRows.push({ row: line, reason: r.reason });
      return undefined;
    }
    this.staged++;
    return importId === undefined ? undefined : encodeCopyRow(importId, line, r.key, r.scope, r.kind);
  }
}

async function stageAndRequest(
  pool: pg.Pool,
  input: CsvInput,
  layout: CsvLayout,
  state: ImportState,
  opts: ImportCsvOptions,
  started: number,
): Promise<{ requestId: string; stagingSeconds: number }> {
  const importId = randomUUID();
  const stopOnError = !opts.skipInvalid;
  let batch = '';
  let bytesDone = 0;
  const progress = (phase: ImportProgress['phase'] = 'staging') =>
    opts.onProgress?.({ phase, rowsRead: state.rowsRead, bytesDone, totalBytes: input.totalBytes });

  // Called for every line as csv-parse emits it; COPY data leaves in large chunks only.
  const onRecord = (fields: string[], line: number): string | null => {
    // Values plus separators: exact for ASCII with \n endings, close enough for a bar otherwise.
    for (const f of fields) bytesDone += f.length + 1;
    if (line === 1) return null; // the header, checked already
    const copyLine = state.check(fields, line, layout, importId);
    // Once the file is known to be rejected, keep reading (to report every bad row) but stop sending.
    if (copyLine !== undefined && !(stopOnError && state.rejected > 0)) batch += copyLine;
    if (line % PROGRESS_EVERY === 0) progress();
    if (batch.length < COPY_CHUNK_CHARS) return null;
    const out = batch;
    batch = '';
    return out;
  };
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('begin');
    const { source, lastLine } = parseToChunks(input, onRecord, () => {
      progress();
      return batch || null;
    });
    try {
      await pipeline(source, copyImportRows(client, layout.kindIndex !== undefined));
    } catch (err) {
      const e = toSyntaxError(err, lastLine() + 1);
      // A CSV syntax error ends the COPY mid-stream; the connection is fine once rolled back.
      throw e instanceof CsvSyntaxError
        ? new CsvRejectedError(
            `${e.message}; nothing was imported`,
            'file',
            [{ row: e.line, reason: e.reason }],
            state.rejected + 1,
            state.rowsRead,
          )
        : toLetheError(e);
    }
    const stagingSeconds = (performance.now() - started) / 1000;
    if (state.rejected > 0 && stopOnError) {
      throw new CsvRejectedError(
        `${state.rejected} of ${state.rowsRead} rows are invalid; the whole file was rejected and nothing was queued (use --skip-invalid to import the valid rows)`,
        'file',
        state.rejectedRows,
        state.rejected,
        state.rowsRead,
      );
    }
    if (state.staged === 0) {
      throw new CsvRejectedError(
        'no valid rows: nothing was queued',
        'file',
        state.rejectedRows,
        state.rejected,
        state.rowsRead,
      );
    }
    progress('request');
    // Keys the key column's type refuses are reported by the database, by CSV row.
    const requestId = await requestErasureFromImport(dbOnClient(client), importId, {
      requestKey: opts.requestKey,
      source: opts.source ?? 'csv',
      mode: opts.mode,
      dueAt: opts.dueAt,
      kind: opts.kind,
    });
    await client.query('commit');
    return { requestId, stagingSeconds };
  } catch (err) {
    await client.query('rollback').catch((e: Error) => (broken = e));
    throw err;
  } finally {
    client.release(broken);
  }
}
