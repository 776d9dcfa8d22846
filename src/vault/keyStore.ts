// Where the vault's data keys live when they are not in the application database (keys
// mode b, docs/vault.md "Separate key store"): one AES-256 key per subject, by a random key
// id the application database holds. KeyStore is the interface (a KMS or a secret manager
// can implement it); PostgresKeyStore keeps the keys in a second PostgreSQL database whose
// backups you keep short. Keys are made by the store's server and travel only in query
// results, never in a statement or a bind parameter, so log_statement = all logs none.
import pg from 'pg';
import { createPool } from '../sql/db.js';

export interface KeyStore {
  /** The store's own id; the vault is bound to it (pii.vault_use_key_store) and checks it. */
  storeId(): Promise<string>;
  /** The data keys of these key ids; with create, made for the ids that have none. */
  dataKeys(keyIds: readonly string[], opts?: { create?: boolean }): Promise<Map<string, Buffer>>;
  /** Destroys the data keys of these ids (those already gone are skipped); returns how many it destroyed. */
  destroy(keyIds: readonly string[]): Promise<number>;
  close(): Promise<void>;
}

/**
 * The key store's schema, idempotent (lethe key-store init). Keys: SHA-256 over three
 * random UUIDs (366 bits from the server's strong random source, pg_strong_random), so
 * the store needs no extension.
 */
export const KEY_STORE_SCHEMA_SQL = `
create schema if not exists lethe_key_store;
revoke all on schema lethe_key_store from public;
create table if not exists lethe_key_store.store (
  singleton boolean primary key default true check (singleton),
  store_id uuid not null default pg_catalog.gen_random_uuid(),
  created_at timestamptz not null default pg_catalog.now()
);
insert into lethe_key_store.store default values on conflict do nothing;
create table if not exists lethe_key_store.data_keys (
  key_id uuid primary key,
  data_key bytea not null check (pg_catalog.length(data_key) = 32),
  created_at timestamptz not null default pg_catalog.now()
);
comment on schema lethe_key_store is 'Lethe vault: per-subject data keys by key id (the application database holds the ids and the ciphertext).';
`;

export async function initKeyStore(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query('begin');
    await client.query(KEY_STORE_SCHEMA_SQL);
    const { rows } = await client.query<{ store_id: string }>('select store_id from lethe_key_store.store');
    await client.query('commit');
    return rows[0]!.store_id;
  } finally {
    await client.end();
  }
}

export class PostgresKeyStore implements KeyStore {
  readonly #pool: pg.Pool;
  #storeId: Promise<string> | undefined;

  constructor(config: string | pg.PoolConfig) {
    this.#pool = createPool({
      application_name: 'lethe-key-store',
      max: 4,
      ...(typeof config === 'string' ? { connectionString: config } : config),
    });
  }

  storeId(): Promise<string> {
    this.#storeId ??= this.#pool
      .query<{ store_id: string }>('select store_id from lethe_key_store.store')
      .then((r) => r.rows[0]!.store_id);
    return this.#storeId;
  }

  async dataKeys(keyIds: readonly string[], opts: { create?: boolean } = {}): Promise<Map<string, Buffer>> {
    const ids = [...new Set(keyIds)];
    const keys = new Map<string, Buffer>();
    if (!ids.length) return keys;
    const { rows } = await this.#pool.query<{ key_id: string; data_key: Buffer }>(
      opts.create
        ? `with made as (
             insert into lethe_key_store.data_keys (key_id, data_key)
             select k.id, pg_catalog.sha256(pg_catalog.uuid_send(pg_catalog.gen_random_uuid()) operator(pg_catalog.||)
                                            pg_catalog.uuid_send(pg_catalog.gen_random_uuid()) operator(pg_catalog.||)
                                            pg_catalog.uuid_send(pg_catalog.gen_random_uuid()))
             from unnest($1::uuid[]) as k (id)
             on conflict (key_id) do nothing
             returning key_id, data_key)
           select key_id, data_key from made
           union all
           select d.key_id, d.data_key from lethe_key_store.data_keys d where d.key_id = any ($1::uuid[])`
        : 'select key_id, data_key from lethe_key_store.data_keys where key_id = any ($1::uuid[])',
      [ids],
    );
    for (const r of rows) keys.set(r.key_id, r.data_key);
    return keys;
  }

  async destroy(keyIds: readonly string[]): Promise<number> {
    if (!keyIds.length) return 0;
    const { rowCount } = await this.#pool.query(
      'delete from lethe_key_store.data_keys where key_id = any ($1::uuid[])',
      [[...keyIds]],
    );
    return rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
