import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.resume_requests: re-queues the job of every queued/running request; returns how many. */
export async function resumeRequests(db: LetheDb): Promise<number> {
  return sqlCall(async () => {
    const { rows } = await sql<{ n: number }>`select pii.resume_requests() as n`.execute(db);
    return rows[0]!.n;
  });
}
