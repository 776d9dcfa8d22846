// The COPY that stages CSV rows. COPY, not INSERTs: one round trip for the whole file,
// which is what makes a million-row import take seconds.
import type pg from 'pg';
import { from as copyFrom, type CopyStreamQuery } from 'pg-copy-streams';

export const IMPORT_ROWS_COPY = 'copy pii.import_rows (import_id, row_number, subject_key, scope) from stdin';
/** The same with the kind column, for files that name the subject kind. */
export const IMPORT_ROWS_COPY_WITH_KIND =
  'copy pii.import_rows (import_id, row_number, subject_key, scope, kind) from stdin';

/** Starts the COPY on a checked-out client; write text-format lines (see encodeCopyRow) to the stream. */
export function copyImportRows(client: pg.PoolClient | pg.Client, withKind = false): CopyStreamQuery {
  return client.query(copyFrom(withKind ? IMPORT_ROWS_COPY_WITH_KIND : IMPORT_ROWS_COPY));
}

/** Escapes a value for COPY's text format; null becomes \N. */
export function copyText(value: string | null): string {
  if (value === null) return '\\N';
  // Fast path: almost every key needs no escaping.
  if (!/[\\\t\n\r]/.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/** One COPY line for pii.import_rows (with the kind column when kind is given). */
export function encodeCopyRow(
  importId: string,
  rowNumber: number,
  subjectKey: string,
  scope: string | null,
  kind?: string,
): string {
  const tail = kind === undefined ? '' : `\t${copyText(kind)}`;
  return `${importId}\t${rowNumber}\t${copyText(subjectKey)}\t${copyText(scope)}${tail}\n`;
}
