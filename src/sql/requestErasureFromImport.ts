import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import type { ErasureMode } from './requestErasure.js';
import { sqlCall } from './errors.js';

export interface FromImportOptions {
  requestKey?: string;
  source?: string;
  mode?: ErasureMode;
  dueAt?: Date;
  /** Subject kind of every row (else the rows' kind column; omitted when the install has one kind). */
  kind?: string;
}

/**
 * pii.request_erasure_from_import: turns the rows staged in pii.import_rows under
 * importId into one request and deletes them, in the caller's transaction.
 */
export async function requestErasureFromImport(
  db: LetheDb,
  importId: string,
  opts: FromImportOptions = {},
): Promise<string> {
  const args = namedArgs([
    ['import_id', importId, 'uuid'],
    ['request_key', opts.requestKey, 'text'],
    ['source', opts.source, 'text'],
    ['mode', opts.mode, 'text'],
    ['due_at', opts.dueAt, 'timestamptz'],
    ['kind', opts.kind, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ id: string }>`select pii.request_erasure_from_import(${args}) as id`.execute(db);
    return rows[0]!.id;
  });
}
