import { sql } from './kysely.js';
import { type LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export type KekLocation = 'embedded' | 'external';

export interface KekRotation {
  kekLocation: KekLocation;
  rewrappedKeys: number;
}

/**
 * pii.vault_rotate_kek: every data key rewrapped under a new KEK in one statement. For an
 * external KEK the connection must carry the new one (lethe.vault_new_kek) and, when the
 * current one is external too, that one (lethe.vault_kek): see vaultKekOptions.
 */
export async function rotateVaultKek(db: LetheDb, toLocation?: KekLocation): Promise<KekRotation> {
  return sqlCall(async () => {
    const { rows } = await sql<{ kek_location: KekLocation; rewrapped_keys: string }>`
      select kek_location, rewrapped_keys from pii.vault_rotate_kek(${toLocation ?? null}::text)`.execute(db);
    return { kekLocation: rows[0]!.kek_location, rewrappedKeys: Number(rows[0]!.rewrapped_keys) };
  });
}
