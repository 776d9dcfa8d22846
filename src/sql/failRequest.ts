import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.fail_request: the request's remaining items and the request itself become failed, with the error. */
export async function failRequest(db: LetheDb, requestId: string, error: string): Promise<void> {
  await sqlCall(() => sql`select pii.fail_request(${requestId}::uuid, ${error}::text)`.execute(db));
}
