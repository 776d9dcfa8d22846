// Tokenize, detokenize and shred with the data keys in a separate key store (docs/vault.md
// "Separate key store"). The database resolves subjects, issues tokens, keeps the
// ciphertext, audits and queues erased key ids; this module brings the keys from the store
// and does the AES, so no data key ever reaches the database. Three round trips per
// tokenize batch (key ids with the deterministic kinds, keys, store), two per detokenize
// batch (ciphertext, keys).
import type { Detokenized } from '../sql/detokenize.js';
import { detokenizeCiphertexts } from '../sql/detokenizeCiphertexts.js';
import type { LetheDb } from '../sql/db.js';
import { LetheError, SqlState } from '../sql/errors.js';
import { storeTokens } from '../sql/storeTokens.js';
import type { TokenizeInput, TokenizeOptions } from '../sql/tokenizeMany.js';
import { vaultConfirmShreds } from '../sql/vaultConfirmShreds.js';
import { vaultKeyIds } from '../sql/vaultKeyIds.js';
import { vaultKeyLocation } from '../sql/vaultKeyLocation.js';
import { vaultPendingShreds } from '../sql/vaultPendingShreds.js';
import { decryptValue, encryptValue } from './aes.js';
import type { KeyStore } from './keyStore.js';

/** The one line the worker and the CLI print after shredding (ids and counts only). */
export const shreddedMessage = (n: number) => `the key store destroyed ${n} data key(s) of erased subjects`;

export class KeyStoreVault {
  readonly #db: LetheDb;
  readonly #store: KeyStore;
  #bound: Promise<void> | undefined;

  constructor(db: LetheDb, store: KeyStore) {
    this.#db = db;
    this.#store = store;
  }

  /** The vault must be bound to this very store: a wrong store would make keys nobody finds again. */
  checkBinding(): Promise<void> {
    this.#bound ??= (async () => {
      const [location, storeId] = await Promise.all([vaultKeyLocation(this.#db), this.#store.storeId()]);
      if (location.storeId !== storeId) {
        throw new LetheError(
          location.location === 'database'
            ? 'the vault keeps its data keys in the database, not in a key store'
            : 'the key store given is not the one the vault is bound to',
          SqlState.objectNotInPrerequisiteState,
          { hint: 'lethe key-store bind binds a vault to a key store (docs/vault.md).' },
        );
      }
    })();
    this.#bound.catch(() => (this.#bound = undefined));
    return this.#bound;
  }

  /** As pii.tokenize_many: one token per input, in order; NULL for a tombstoned subject. */
  async tokenize(inputs: readonly TokenizeInput[], opts: TokenizeOptions = {}): Promise<(string | null)[]> {
    await this.checkBinding();
    if (!inputs.length) return [];
    const scoped = inputs.some((i) => i.scope !== undefined);
    const [keyIds, deterministic] = await Promise.all([
      vaultKeyIds(
        this.#db,
        inputs.map((i) => i.subjectKey),
        { scopes: scoped ? inputs.map((i) => i.scope ?? null) : undefined, subjectKind: opts.subjectKind },
      ),
      this.#deterministicKinds(),
    ]);
    const live = keyIds.filter((id): id is string => id !== null);
    const keys = await this.#store.dataKeys(live, { create: true });
    return storeTokens(
      this.#db,
      inputs.map((input, i) => {
        const keyId = keyIds[i];
        // A tombstoned subject: no key, nothing encrypted; store_tokens gives it NULL.
        const key = keyId ? keys.get(keyId) : undefined;
        if (keyId && !key) throw new LetheError(`the key store has no data key for value #${i + 1}`, '58000');
        return {
          subjectKey: input.subjectKey,
          kind: input.kind,
          keyId: keyId ?? null,
          ciphertext: key ? encryptValue(key, input.value) : null,
          value: deterministic.has(input.kind) ? input.value : undefined,
          scope: input.scope,
        };
      }),
      { subjectKind: opts.subjectKind },
    );
  }

  /** As pii.detokenize: one result per token, in order; one audit row per call. */
  async detokenize(tokens: readonly string[], purpose: string, client?: string): Promise<Detokenized[]> {
    await this.checkBinding();
    const found = await detokenizeCiphertexts(this.#db, tokens, purpose, client);
    const keys = await this.#store.dataKeys(found.flatMap((f) => (f.keyId ? [f.keyId] : [])));
    return found.map((f) => {
      const key = f.keyId ? keys.get(f.keyId) : undefined;
      // A key the store destroyed already (its subject erased meanwhile) reads as erased.
      if (f.status !== 'ok' || !key || !f.ciphertext)
        return { token: f.token, kind: f.kind, value: null, status: f.status === 'ok' ? 'erased' : f.status };
      const value = decryptOrNull(key, f.ciphertext);
      // The operator supplies the ciphertext (pii.store_tokens can check its shape, not its
      // key): one that does not decrypt answers unknown instead of failing the whole batch.
      return value === null
        ? { token: f.token, kind: f.kind, value: null, status: 'unknown' }
        : { token: f.token, kind: f.kind, value, status: 'ok' };
    });
  }

  /**
   * Has the store destroy the data keys of erased subjects, in batches, then confirms each
   * batch to the database; returns how many keys left the queue. Destroying before
   * confirming: a crash in between only destroys them again.
   */
  async shredErasedKeys(batchSize = 1000): Promise<number> {
    await this.checkBinding();
    let shredded = 0;
    for (;;) {
      const pending = await vaultPendingShreds(this.#db, batchSize);
      if (!pending.length) return shredded;
      await this.#store.destroy(pending);
      shredded += await vaultConfirmShreds(this.#db, pending);
      if (pending.length < batchSize) return shredded;
    }
  }

  async #deterministicKinds(): Promise<Set<string>> {
    const rows = await this.#db
      .selectFrom('pii.vault_kinds')
      .select('kind')
      .where('deterministic', '=', true)
      .execute();
    return new Set(rows.map((r) => r.kind));
  }
}

function decryptOrNull(key: Buffer, ciphertext: Buffer): string | null {
  try {
    return decryptValue(key, ciphertext);
  } catch {
    return null;
  }
}
