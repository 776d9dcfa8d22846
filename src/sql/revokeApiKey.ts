import { sql } from './kysely.js';
import { type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.revoke_api_key by name or id: the running server refuses the key from its next request. */
export async function revokeApiKey(db: LetheDb, nameOrId: string): Promise<number> {
  return sqlCall(async () => {
    const { rows } = await sql<{ n: number }>`select pii.revoke_api_key(${nameOrId}::text) as n`.execute(db);
    return rows[0]!.n;
  });
}
