import { sql } from './kysely.js';
import { type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface VaultKeyLocation {
  location: 'database' | 'key_store';
  storeId: string | null;
}

/** pii.vault_key_location: the data keys in this database, or in the key store of that id. */
export async function vaultKeyLocation(db: LetheDb): Promise<VaultKeyLocation> {
  return sqlCall(async () => {
    const { rows } = await sql<{ location: VaultKeyLocation['location']; store_id: string | null }>`
      select location, store_id from pii.vault_key_location()`.execute(db);
    return { location: rows[0]!.location, storeId: rows[0]!.store_id };
  });
}
