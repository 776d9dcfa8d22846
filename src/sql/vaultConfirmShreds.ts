import { sql } from './kysely.js';
import { type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.vault_confirm_shreds: these key ids' data keys are destroyed in the key store; returns how many left the queue. */
export async function vaultConfirmShreds(db: LetheDb, keyIds: readonly string[]): Promise<number> {
  return sqlCall(async () => {
    const { rows } = await sql<{ n: number }>`select pii.vault_confirm_shreds(${[...keyIds]}::uuid[]) as n`.execute(db);
    return Number(rows[0]!.n);
  });
}
