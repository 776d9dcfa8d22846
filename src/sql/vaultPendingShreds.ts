import { sql } from './kysely.js';
import { type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.vault_pending_shreds: the oldest key ids of erased subjects the key store has still to destroy. */
export async function vaultPendingShreds(db: LetheDb, maxKeys = 1000): Promise<string[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{ key_id: string }>`
      select key_id from pii.vault_pending_shreds(${maxKeys}::integer)`.execute(db);
    return rows.map((r) => r.key_id);
  });
}
