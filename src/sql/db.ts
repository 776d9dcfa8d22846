// The Kysely instance every src/sql module takes. Typed by the generated src/db/types.ts,
// so queries on Lethe's tables and views are checked against the migrations.
import type { RawBuilder } from 'kysely';
import { Kysely, PostgresDialect, sql } from './kysely.js';
import pg from 'pg';

const { Pool: PgPool } = pg;
import type { DB } from '../db/types.js';

export type LetheDb = Kysely<DB>;

export function createDb(pool: pg.Pool): LetheDb {
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Named arguments for a SQL function call (`name => $1::type, …`), leaving out the
 * undefined ones so the function's own defaults apply. Named notation keeps calls
 * valid when a function gains optional parameters.
 */
export function namedArgs(
  args: ReadonlyArray<readonly [name: string, value: unknown, type: string]>,
): RawBuilder<unknown> {
  const given = args.filter(([, value]) => value !== undefined);
  return sql.join(given.map(([name, value, type]) => sql`${sql.raw(name)} => ${value}::${sql.raw(type)}`));
}

/** bigint and numeric arrive from pg as strings; counts fit a JS number comfortably. */
export function toNumber(value: string | number | null | undefined): number {
  return value == null ? 0 : Number(value);
}

export function toNumberOrNull(value: string | number | null | undefined): number | null {
  return value == null ? null : Number(value);
}

/**
 * A Kysely bound to one checked-out client, for work that must share its transaction
 * with something Kysely cannot express (the CSV import's COPY). The client stays the
 * caller's: nothing here releases or ends it.
 */
export function dbOnClient(client: pg.PoolClient | pg.Client): LetheDb {
  const connection = { query: client.query.bind(client), release: () => {} };
  const pool = { connect: async () => connection, end: async () => {} };
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: pool as unknown as pg.Pool }) });
}

/**
 * A pool whose connection errors cannot crash the process: pg emits 'error' on idle
 * clients (pool) and on checked-out ones (client) when the server goes away, and an
 * unhandled 'error' event kills Node. The query in flight still rejects normally.
 */
export function createPool(config: pg.PoolConfig, onNotice?: (notice: ServerNotice) => void): pg.Pool {
  const pool = new PgPool(config);
  pool.on('error', () => {});
  pool.on('connect', (client) => {
    client.on('error', () => {});
    if (onNotice)
      client.on('notice', (n) =>
        onNotice({ severity: n.severity ?? 'NOTICE', message: n.message ?? '', hint: n.hint }),
      );
  });
  return pool;
}

/** A NOTICE or WARNING the server sent (Lethe warns about unindexed subject columns, roles that bypass masks, …). */
export interface ServerNotice {
  severity: string;
  message: string;
  hint?: string;
}
