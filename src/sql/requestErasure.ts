import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export type ErasureMode = 'erase' | 'delete';

export interface RequestErasureOptions {
  /** Idempotency key: the same key returns the same request id (Smartico's eid). */
  requestKey?: string;
  /** Free-form origin recorded on the request ('api' by default). */
  source?: string;
  /** One scope for all keys, or one per key (scoped installs only). */
  scopes?: readonly string[];
  /** erase: each table's on_erase; delete: remove the subject row and every registered row. */
  mode?: ErasureMode;
  /** Deadline; the install's default (24 h) otherwise. */
  dueAt?: Date;
  /** Subject kind (customer, staff); may be omitted when the install has one kind. */
  kind?: string;
}

/** pii.request_erasure: records and queues a request in the caller's transaction; returns its id. */
export async function requestErasure(
  db: LetheDb,
  subjectKeys: readonly string[],
  opts: RequestErasureOptions = {},
): Promise<string> {
  const args = namedArgs([
    ['subject_keys', subjectKeys, 'text[]'],
    ['request_key', opts.requestKey, 'text'],
    ['source', opts.source, 'text'],
    ['scopes', opts.scopes, 'text[]'],
    ['mode', opts.mode, 'text'],
    ['due_at', opts.dueAt, 'timestamptz'],
    ['kind', opts.kind, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ id: string }>`select pii.request_erasure(${args}) as id`.execute(db);
    return rows[0]!.id;
  });
}
