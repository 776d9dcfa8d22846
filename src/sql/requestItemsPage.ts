import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';
import { type RequestItem, type RequestItemRow, toRequestItem } from './requestItems.js';

export interface RequestItemsPageOptions {
  /** The last subject hash of the previous page; absent: the first page. */
  afterHash?: string;
  /** 1-1000, default 50. */
  pageSize?: number;
  only?: 'unmatched' | 'failed';
}

/** pii.request_items_page: one keyset page of a request's items, in subject-hash order. */
export async function requestItemsPage(
  db: LetheDb,
  requestId: string,
  opts: RequestItemsPageOptions = {},
): Promise<RequestItem[]> {
  return sqlCall(async () => {
    const { rows } = await sql<RequestItemRow>`
      select * from pii.request_items_page(${requestId}::uuid, ${opts.afterHash ?? null}::text,
                                           ${opts.pageSize ?? 50}::integer, ${opts.only ?? null}::text)`.execute(db);
    return rows.map(toRequestItem);
  });
}
