import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

export interface WasErased {
  erased: boolean;
  flaggedAt: Date | null;
  erasedAt: Date | null;
  requestId: string | null;
}

interface WasErasedRow {
  erased: boolean;
  flagged_at: Date | null;
  erased_at: Date | null;
  request_id: string | null;
}

export const WAS_ERASED_COLUMNS = ['erased', 'flagged_at', 'erased_at', 'request_id'] as const satisfies ReadonlyArray<
  keyof WasErasedRow
>;

function fromRow(r: WasErasedRow | undefined): WasErased {
  return r
    ? { erased: r.erased, flaggedAt: r.flagged_at, erasedAt: r.erased_at, requestId: r.request_id }
    : { erased: false, flaggedAt: null, erasedAt: null, requestId: null };
}

/** pii.was_erased: answered from the keyed hash; the key is not stored. */
export async function wasErased(db: LetheDb, subjectKey: string, scope?: string, kind?: string): Promise<WasErased> {
  const args = namedArgs([
    ['subject_key', subjectKey, 'text'],
    ['scope', scope, 'text'],
    ['kind', kind, 'text'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<WasErasedRow>`select * from pii.was_erased(${args})`.execute(db);
    return fromRow(rows[0]);
  });
}

/** pii.was_erased_hash: the same question from a hash shown in a report (staff never see the key). */
export async function wasErasedHash(db: LetheDb, subjectHash: string): Promise<WasErased> {
  return sqlCall(async () => {
    const { rows } = await sql<WasErasedRow>`select * from pii.was_erased_hash(${subjectHash}::text)`.execute(db);
    return fromRow(rows[0]);
  });
}
