import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface RequestItem {
  /** Keyed hash (hex) standing for the subject; never the key. */
  subjectHash: string;
  /** CSV line the subject first appeared on, for imports. */
  sourceRow: number | null;
  matched: boolean;
  status: 'pending' | 'done' | 'failed';
  /** The request that actually erased the subject (another one, when requests overlap). */
  erasedBy: string | null;
  error: string | null;
}

export interface RequestItemsFilter {
  matched?: boolean;
  status?: RequestItem['status'];
  limit?: number;
}

export interface RequestItemRow {
  subject_hash: string;
  source_row: string | null;
  matched: boolean;
  status: RequestItem['status'];
  erased_by: string | null;
  error: string | null;
}

export const REQUEST_ITEMS_COLUMNS = [
  'subject_hash',
  'source_row',
  'matched',
  'status',
  'erased_by',
  'error',
] as const satisfies ReadonlyArray<keyof RequestItemRow>;

/** pii.request_items, optionally filtered (the function already orders by CSV row). */
export async function requestItems(
  db: LetheDb,
  requestId: string,
  filter: RequestItemsFilter = {},
): Promise<RequestItem[]> {
  return sqlCall(async () => {
    const { rows } = await sql<RequestItemRow>`
      select * from pii.request_items(${requestId}::uuid) i
      where (${filter.matched ?? null}::boolean is null or i.matched = ${filter.matched ?? null}::boolean)
        and (${filter.status ?? null}::text is null or i.status = ${filter.status ?? null}::text)
      limit ${filter.limit ?? null}::bigint`.execute(db);
    return rows.map(toRequestItem);
  });
}

export function toRequestItem(r: RequestItemRow): RequestItem {
  return {
    subjectHash: r.subject_hash,
    sourceRow: r.source_row == null ? null : Number(r.source_row),
    matched: r.matched,
    status: r.status,
    erasedBy: r.erased_by,
    error: r.error,
  };
}
