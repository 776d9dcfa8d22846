import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';
import type { RequestState } from './requestStatus.js';

/** pii.finish_request: verifies, stores the result, announces; returns the status. Idempotent. */
export async function finishRequest(db: LetheDb, requestId: string): Promise<RequestState> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      status: RequestState;
    }>`select pii.finish_request(${requestId}::uuid) as status`.execute(db);
    return rows[0]!.status;
  });
}
