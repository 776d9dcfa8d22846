// The COPY that stages CSV rows. COPY, not INSERTs: one round trip for the whole file,
// which is what makes a million-row import take seconds.
import type pg from 'pg';
import { from as copyFrom, type CopyStreamQuery } from 'pg-copy-streams';

export const IMPORT_ROWS_COPY = 'copy pii.import_rows (import_id, row_number, subject_key, scope) from stdin';

/** Starts the COPY on a checked-out client; write text-format lines (see encodeCopyRow) to the stream. */
export function copyImportRows(client: pg.PoolClient | pg.Client): CopyStreamQuery {
  return client.query(copyFrom(IMPORT_ROWS_COPY));
}

/** Escapes a value for COPY's text format; null becomes \N. */
export function copyText(value: string | null): string {
  if (value === null) return '\\N';
  // Fast path: almost every key needs no escaping.
  if (!/[\\\t\n\r]/.test(value)) return value;
  return value.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/** One COPY line for pii.import_rows. */
export function encodeCopyRow(importId: string, rowNumber: number, subjectKey: string, scope: string | null): string {
  return `${importId}\t${rowNumber}\t${copyText(subjectKey)}\t${copyText(scope)}\n`;
}
