import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.retry_request: puts a failed request's failed items back in the queue. */
export async function retryRequest(db: LetheDb, requestId: string): Promise<void> {
  await sqlCall(() => sql`select pii.retry_request(${requestId}::uuid)`.execute(db));
}
