// The benchmark's database: a fresh database (on the embedded cluster, or on the server of
// --database-url / DATABASE_URL), the demo CRM built in it by src/demo/crm, Lethe installed,
// and the crm tables registered the way a DBA would.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { withDatabaseName } from '../../src/db/databaseUrl.js';
import { startEmbeddedPostgres } from '../../src/db/embeddedPostgres.js';
import { migrate } from '../../src/db/migrate.js';
import { generateCrm, type GenerateCrmResult } from '../../src/demo/crm/generateCrm.js';
import { timed } from './stats.js';

export interface BenchDatabase {
  /** The benchmark database (superuser or owner). */
  url: string;
  embedded: boolean;
  /** Drops the database (or stops the embedded cluster). */
  close(): Promise<void>;
}

/**
 * Settings applied to the embedded cluster only (never to someone else's server): WAL is
 * allowed to grow so that no checkpoint is forced in the middle of a timed run; the
 * benchmark issues CHECKPOINT itself between runs.
 */
export const EMBEDDED_SETTINGS: Record<string, string> = {
  max_wal_size: '8GB',
  checkpoint_timeout: '1h',
};

export async function openBenchDatabase(opts: {
  databaseUrl?: string;
  keep?: boolean;
  log: (s: string) => void;
}): Promise<BenchDatabase> {
  const external = opts.databaseUrl;
  let adminUrl: string;
  let stopCluster: (() => Promise<void>) | undefined;
  if (external) {
    adminUrl = external;
  } else {
    opts.log('starting an embedded PostgreSQL (deleted at the end)');
    const cluster = await startEmbeddedPostgres();
    adminUrl = cluster.url;
    stopCluster = cluster.stop;
    await withClient(adminUrl, async (c) => {
      for (const [name, value] of Object.entries(EMBEDDED_SETTINGS)) {
        await c.query(`alter system set ${name} = '${value}'`);
      }
      await c.query('select pg_reload_conf()');
    });
  }
  const name = external ? `lethe_bench_${randomBytes(4).toString('hex')}` : 'lethe_bench';
  try {
    await withClient(adminUrl, (c) => c.query(`create database ${pg.escapeIdentifier(name)}`));
  } catch (err) {
    await stopCluster?.();
    throw new Error(
      `cannot create the benchmark database ${name} on the server of the given URL (the benchmark builds its ` +
        `own 5 GB dataset and never touches your data): ${(err as Error).message}`,
      { cause: err },
    );
  }
  const url = withDatabaseName(adminUrl, name);
  await withClient(url, async (c) => {
    const { rows } = await c.query<{ ok: boolean }>(
      `select exists (select from pg_available_extensions where name = 'pg_stat_statements')
              and current_setting('shared_preload_libraries') ~ 'pg_stat_statements' as ok`,
    );
    if (rows[0]!.ok) await c.query('create extension if not exists pg_stat_statements');
  });
  if (external)
    opts.log(`created database ${name} on the given server${opts.keep ? ' (kept: --keep)' : ' (dropped at the end)'}`);
  return {
    url,
    embedded: !external,
    close: async () => {
      if (stopCluster) return stopCluster();
      if (opts.keep) return;
      await withClient(adminUrl, (c) => c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`));
    },
  };
}

export async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function connect(url: string, applicationName = 'lethe-bench'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  // Erasures and the dataset build are long statements; a server default must not cut them.
  await client.query(`set statement_timeout = 0`);
  return client;
}

export interface Dataset extends GenerateCrmResult {
  scale: number;
  /** Lethe's migrations (graphile-worker + dbmate), seconds. */
  installSeconds: number;
  registerSeconds: number;
}

/** Builds the CRM with src/demo/crm (2 connections), installs Lethe and registers the tables. */
export async function buildDataset(url: string, scale: number, log: (s: string) => void): Promise<Dataset> {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  let built: GenerateCrmResult;
  try {
    built = await generateCrm(pool, { scale, parallel: 2, log: (s) => log(`  ${s.trim()}`) });
  } finally {
    await pool.end();
  }
  const install = await timed(() => migrate(url));
  const register = await timed(() =>
    withClient(url, async (c) => {
      await c.query(REGISTER_SQL);
      await c.query(BENCH_SCHEMA_SQL);
      // Registration rebuilds the masked views and fills the registry: fresh statistics for
      // the catalog-like tables the engine reads.
      await c.query('analyze pii.tables, pii.columns, pii.subject_table');
    }),
  );
  return { ...built, scale, installSeconds: install.seconds, registerSeconds: register.seconds };
}

/**
 * The registration a DBA writes for the demo CRM. events and loyalty_points are
 * behavioural history (deleted on erasure); orders are kept for accounting with their PII
 * nulled, their items through orders; daily_revenue identifies nobody and is not registered.
 * Columns that are not personal data are classified as such, so the masked views show them.
 */
export const REGISTER_SQL = `
select pii.register_subject_table('crm.customers', 'id');
select pii.register_table('crm.events', 'customer_id', 'delete', unenforced_join => true);
select pii.register_table('crm.orders', 'customer_id', 'anonymize', unenforced_join => true);
select pii.register_child_table('crm.order_items', 'crm.orders', 'order_id', 'anonymize', 'id', unenforced_join => true);
select pii.register_table('crm.loyalty_points', 'customer_id', 'delete', unenforced_join => true);

select pii.register_column('crm.customers', 'email', 'null', 'email', 'contact');
select pii.register_column('crm.customers', 'first_name', 'null', 'partial:1,0', 'name');
select pii.register_column('crm.customers', 'last_name', 'null', 'hide', 'name');
select pii.register_column('crm.customers', 'phone', 'null', 'partial:3,2', 'contact');
select pii.register_column('crm.customers', 'birth_date', 'null', 'year', 'demographic');
select pii.register_column('crm.customers', 'city', 'null', 'clear', 'location');
select pii.register_column('crm.customers', 'ip_address', 'null', 'hide', 'network');
select pii.register_column('crm.customers', 'notes', 'null', 'hide', 'free_text');
select pii.register_column('crm.customers', 'status', 'set:DEACTIVATED', 'clear', 'status');
select pii.register_column('crm.customers', 'email_opt_out', 'set:true', 'clear', 'consent');
select pii.register_column('crm.customers', 'sms_opt_out', 'set:true', 'clear', 'consent');
select pii.register_column('crm.orders', 'shipping_name', 'null', 'partial:1,0', 'name');
select pii.register_column('crm.orders', 'shipping_address', 'null', 'hide', 'address');
select pii.register_column('crm.orders', 'billing_email', 'null', 'email', 'contact');
select pii.register_column('crm.order_items', 'gift_message', 'null', 'hide', 'free_text');

select pii.mark_not_pii('crm.customers', 'brand_id', 'country', 'created_at', 'last_seen_at');
select pii.mark_not_pii('crm.orders', 'id', 'ordered_at', 'total', 'status');
select pii.mark_not_pii('crm.order_items', 'id', 'sku', 'quantity', 'unit_price');
select pii.mark_not_pii('crm.events', 'id', 'occurred_at', 'kind');
select pii.mark_not_pii('crm.loyalty_points', 'id', 'points', 'reason', 'created_at');
`;

/**
 * The hand-written statements the engine is compared with: exactly the row changes the
 * registration asks for, written the way a careful DBA would (set-based, one statement
 * per table, and only rows whose values actually change are written). $1 is bigint[].
 */
export const HAND_STATEMENTS: ReadonlyArray<{ table: string; sql: string }> = [
  {
    table: 'crm.order_items',
    sql: `update crm.order_items as i set gift_message = null
  from crm.orders as o
 where i.order_id = o.id and o.customer_id = any ($1::bigint[]) and i.gift_message is not null`,
  },
  { table: 'crm.events', sql: `delete from crm.events where customer_id = any ($1::bigint[])` },
  {
    table: 'crm.orders',
    sql: `update crm.orders set shipping_name = null, shipping_address = null, billing_email = null
 where customer_id = any ($1::bigint[])
   and (shipping_name, shipping_address, billing_email) is distinct from (null, null, null)`,
  },
  { table: 'crm.loyalty_points', sql: `delete from crm.loyalty_points where customer_id = any ($1::bigint[])` },
  {
    table: 'crm.customers',
    sql: `update crm.customers
   set email = null, first_name = null, last_name = null, phone = null, birth_date = null, city = null,
       ip_address = null, notes = null, status = 'DEACTIVATED', email_opt_out = true, sms_opt_out = true
 where id = any ($1::bigint[])
   and (email, first_name, last_name, phone, birth_date, city, ip_address, notes, status, email_opt_out, sms_opt_out)
       is distinct from (null, null, null, null, null::date, null, null::inet, null, 'DEACTIVATED', true, true)`,
  },
];

/** The same row changes as one statement (one round trip): the floor for a single subject. */
export const HAND_ONE_STATEMENT = `with
${HAND_STATEMENTS.map((s, i) => `s${i} as (${s.sql.replace(/\n\s*/g, ' ')})`).join(',\n')}
select 1`;

/**
 * Baselines that need server-side code: the per-subject PL/pgSQL loop (the hand-written
 * statements, one subject at a time), in a schema of the benchmark's own.
 */
export const BENCH_SCHEMA_SQL = `
create schema if not exists bench;
create or replace function bench.erase_loop(ids bigint[]) returns void
language plpgsql as $$
declare
  k bigint;
begin
  foreach k in array ids loop
    update crm.order_items as i set gift_message = null
      from crm.orders as o
     where i.order_id = o.id and o.customer_id = k and i.gift_message is not null;
    delete from crm.events where customer_id = k;
    update crm.orders set shipping_name = null, shipping_address = null, billing_email = null
     where customer_id = k and (shipping_name, shipping_address, billing_email) is distinct from (null, null, null);
    delete from crm.loyalty_points where customer_id = k;
    update crm.customers
       set email = null, first_name = null, last_name = null, phone = null, birth_date = null, city = null,
           ip_address = null, notes = null, status = 'DEACTIVATED', email_opt_out = true, sms_opt_out = true
     where id = k
       and (email, first_name, last_name, phone, birth_date, city, ip_address, notes, status, email_opt_out, sms_opt_out)
           is distinct from (null, null, null, null, null::date, null, null::inet, null, 'DEACTIVATED', true, true);
  end loop;
end
$$;
`;

export interface SubjectSets {
  /** The bulk erasure's subjects (50,000 at scale 1). */
  bulk: string[];
  /** The slow baselines' subjects: the first ones of bulk (2,000 at most). */
  capped: string[];
  /** Single-subject erasures: other subjects, never in bulk. */
  single: string[];
  /** As many subjects as bulk, in neither: the committed request with two workers (empty when the dataset is too small). */
  parallel: string[];
}

/**
 * Subjects drawn deterministically: customers in the order of a fixed hash of their id, so
 * a rerun at the same scale erases the same people, spread evenly over ids, signup dates
 * and activity levels.
 */
export async function pickSubjects(
  db: pg.ClientBase,
  sizes: { bulk: number; capped: number; single: number },
): Promise<SubjectSets> {
  const { rows } = await db.query<{ id: string }>(
    `select id::text as id from crm.customers order by hashint8extended(id, 20261126), id limit $1`,
    [2 * sizes.bulk + sizes.single],
  );
  const ids = rows.map((r) => r.id);
  if (ids.length < sizes.bulk + sizes.single) {
    throw new Error(`the dataset has ${ids.length} customers; the benchmark needs ${sizes.bulk + sizes.single}`);
  }
  const bulk = ids.slice(0, sizes.bulk);
  const parallel = ids.slice(sizes.bulk + sizes.single);
  return {
    bulk,
    capped: bulk.slice(0, Math.min(sizes.capped, bulk.length)),
    single: ids.slice(sizes.bulk, sizes.bulk + sizes.single),
    parallel: parallel.length === sizes.bulk ? parallel : [],
  };
}
