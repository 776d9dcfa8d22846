import { sql } from './kysely.js';
import { type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

/** pii.vault_use_key_store (pii_admin): binds the vault to the key store of this id, before the first tokenize. */
export async function useKeyStore(db: LetheDb, storeId: string): Promise<void> {
  await sqlCall(() => sql`select pii.vault_use_key_store(${storeId}::uuid)`.execute(db));
}
