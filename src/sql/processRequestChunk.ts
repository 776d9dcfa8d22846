import { sql } from './kysely.js';
import { type LetheDb, namedArgs } from './db.js';
import { sqlCall } from './errors.js';

/**
 * pii.process_request_chunk: claims up to chunkSize pending items (SKIP LOCKED), erases
 * them set-based and marks them done, all in the caller's transaction (autocommit on a
 * pool). Returns how many items it processed; 0 means nothing is left.
 */
export async function processRequestChunk(db: LetheDb, requestId: string, chunkSize?: number): Promise<number> {
  const args = namedArgs([
    ['request_id', requestId, 'uuid'],
    ['chunk_size', chunkSize, 'integer'],
  ]);
  return sqlCall(async () => {
    const { rows } = await sql<{ n: number }>`select pii.process_request_chunk(${args}) as n`.execute(db);
    return rows[0]!.n;
  });
}
