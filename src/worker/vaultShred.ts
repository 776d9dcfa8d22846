// lethe_vault_shred: with the vault's data keys in a separate key store, erasure queues the
// erased subjects' key ids in the database (pii_internal.vault_shred_queue) and this task
// has the store destroy the keys, every minute (tokens answer erased from the erasure's
// commit; the key store forgets the keys within the minute).
import type { Task } from 'graphile-worker';
import type { LetheDb } from '../sql/db.js';
import type { KeyStore } from '../vault/keyStore.js';
import { KeyStoreVault, shreddedMessage } from '../vault/keyStoreVault.js';

export const VAULT_SHRED_TASK = 'lethe_vault_shred';
export const VAULT_SHRED_CRONTAB = `* * * * * ${VAULT_SHRED_TASK} ?jobKey=lethe:vault_shred`;

export function vaultShredTask(db: LetheDb, keyStore: KeyStore): Task {
  const vault = new KeyStoreVault(db, keyStore);
  return async (_payload, helpers) => {
    const shredded = await vault.shredErasedKeys();
    if (shredded > 0) helpers.logger.info(`vault: ${shreddedMessage(shredded)}`);
  };
}
