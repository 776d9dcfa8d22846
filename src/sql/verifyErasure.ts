import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface Residual {
  tableName: string;
  columnName: string | null;
  /** Keyed hash (hex) of the subject the trace belongs to. */
  subjectHash: string;
  detail: string;
}

interface ResidualRow {
  table_name: string;
  column_name: string | null;
  subject_hash: string;
  detail: string;
}

export const VERIFY_ERASURE_COLUMNS = [
  'table_name',
  'column_name',
  'subject_hash',
  'detail',
] as const satisfies ReadonlyArray<keyof ResidualRow>;

/** pii.verify_erasure: every residual trace of the request's subjects; empty means verified. */
export async function verifyErasure(db: LetheDb, requestId: string): Promise<Residual[]> {
  return sqlCall(async () => {
    const { rows } = await sql<ResidualRow>`select * from pii.verify_erasure(${requestId}::uuid)`.execute(db);
    return rows.map((r) => ({
      tableName: r.table_name,
      columnName: r.column_name,
      subjectHash: r.subject_hash,
      detail: r.detail,
    }));
  });
}
