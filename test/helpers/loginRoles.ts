// Real LOGIN roles for permission tests: cluster-wide, so named after the test database,
// each with its own connection; drop() removes what they own, then the roles.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { admin, connectAs, type TestDatabase } from './testDatabase.js';

export interface LoginRoles<K extends string> {
  /** Role name per key (`<database>_<key>`). */
  names: Record<K, string>;
  /** The open connection logged in as that role. */
  as(key: K): pg.Client;
  drop(): Promise<void>;
}

export async function createLoginRoles<K extends string>(db: TestDatabase, keys: readonly K[]): Promise<LoginRoles<K>> {
  const password = randomBytes(12).toString('hex');
  const names = Object.fromEntries(keys.map((k) => [k, `${db.name}_${k}`])) as Record<K, string>;
  const clients = new Map<K, pg.Client>();
  for (const k of keys) await db.query(`create role ${names[k]} login password '${password}'`);
  for (const k of keys) {
    const c = new pg.Client({ connectionString: connectAs(db.url, names[k], password), application_name: `test-${k}` });
    await c.connect();
    clients.set(k, c);
  }
  return {
    names,
    as: (k) => clients.get(k)!,
    drop: async () => {
      for (const c of clients.values()) await c.end().catch(() => undefined);
      for (const k of keys) await db.query(`drop owned by ${names[k]}`).catch(() => undefined);
    },
  };
}

/** After the test database is dropped: the roles themselves (they live in the cluster). */
export async function dropLoginRoles(names: Iterable<string>): Promise<void> {
  for (const name of names) await admin(`drop role if exists ${name}`);
}
