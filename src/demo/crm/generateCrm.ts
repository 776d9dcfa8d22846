// Builds the demo CRM (schema `crm`) inside PostgreSQL at a chosen scale.
//
// All the work is SQL run by the server (src/demo/crm/schema.sql, src/demo/crm/generate.sql):
// INSERT ... SELECT over generate_series, indexes and keys built after the load, then
// VACUUM (ANALYZE). This module only substitutes the row counts, runs the sections in
// order (the independent steps of a phase concurrently when it has a Pool) and reports
// timings, counts and size.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';

export interface GenerateCrmOptions {
  /** 1.0 = 1,000,000 customers, 20,000,000 events, 5,000,000 orders, 10,000,000 order items, 3,000,000 loyalty rows. */
  scale: number;
  log?: (s: string) => void;
  /**
   * Connections used at once when given a Pool (capped by the pool's max); default 2.
   * The data does not depend on it. With a single client the build is sequential.
   */
  parallel?: number;
}

export interface GenerateCrmResult {
  /** Wall-clock build time, from dropping the schema to the end of the statistics. */
  seconds: number;
  /** Total size of the schema's tables, indexes and TOAST (bytes). */
  bytes: number;
  /** Exact row counts: the six tables, plus each events partition under its own name. */
  counts: Record<string, number>;
  /** Seconds spent in each step of generate.sql (summed over its chunks; steps may overlap). */
  steps: Record<string, number>;
  /** Wall-clock seconds of each phase. */
  phases: Record<string, number>;
  /** Connections used. */
  connections: number;
}

/** The tables of schema `crm`, parents before children. */
export const CRM_TABLES = ['customers', 'events', 'orders', 'order_items', 'loyalty_points', 'daily_revenue'] as const;
export const CRM_EVENT_PARTITIONS = ['events_2026_08', 'events_2026_09', 'events_2026_10', 'events_default'] as const;

export interface CrmRowCounts {
  customers: number;
  events: number;
  orders: number;
  order_items: number;
  loyalty_points: number;
}

/** Row counts generate.sql produces at a scale (daily_revenue depends on the data, so it is not here). */
export function crmRowCounts(scale: number): CrmRowCounts {
  if (typeof scale !== 'number' || !Number.isFinite(scale) || scale <= 0 || scale > 100) {
    throw new RangeError(`scale must be a number in (0, 100], got ${String(scale)}`);
  }
  const orders = Math.round(5_000_000 * scale);
  return {
    customers: Math.max(1, Math.round(1_000_000 * scale)),
    events: Math.round(20_000_000 * scale),
    orders,
    // Items come in blocks of 4 per pair of orders: exactly two per order on average.
    order_items: 2 * orders,
    loyalty_points: Math.round(3_000_000 * scale),
  };
}

/** The psql variables generate.sql expects for a scale (whole-table ranges for the @split steps). */
export function crmSqlParams(scale: number): Record<string, number> {
  const counts = crmRowCounts(scale);
  const params: Record<string, number> = { ...counts, perm_mult: scatterMultiplier(counts.customers) };
  for (const [name, n] of Object.entries(counts)) {
    params[`${name}_from`] = 1;
    params[`${name}_to`] = n;
  }
  return params;
}

/**
 * A multiplier coprime with n near n / golden ratio: r -> r * m mod n is then a bijection
 * of 0..n-1 that sends consecutive ranks far apart.
 */
function scatterMultiplier(n: number): number {
  if (n <= 2) return 1;
  let m = Math.floor(n * 0.6180339887498949);
  while (gcd(m, n) !== 1) m++;
  return m;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Replaces psql-style `:name` variables (not `::casts`) by integer literals. */
export function substituteSqlParams(sql: string, params: Record<string, number>): string {
  return sql.replace(/(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)/g, (_m, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`generate.sql uses :${name}, which has no value`);
    if (!Number.isSafeInteger(value)) throw new Error(`:${name} must be an integer, got ${value}`);
    return String(value);
  });
}

interface Step {
  name: string;
  /** Unsubstituted SQL. */
  sql: string;
  /** For "@split(<count>)" steps: the count whose id range the step covers. */
  split?: string;
}

interface Script {
  setup: string;
  phases: { name: string; steps: Step[] }[];
  cleanup: string;
}

/** Parses generate.sql's "-- @setup / @phase / @step / @cleanup" layout. */
export function parseGenerateSql(sql: string): Script {
  const script: Script = { setup: '', phases: [], cleanup: '' };
  const parts = sql.split(/^-- @(setup|cleanup|phase .+|step .+)$/m);
  // parts: [header, marker1, body1, marker2, body2, ...]
  let section: 'header' | 'setup' | 'phase' | 'cleanup' = 'header';
  for (let i = 1; i < parts.length; i += 2) {
    const marker = parts[i]!.trim();
    const body = parts[i + 1] ?? '';
    if (marker === 'setup' || marker === 'cleanup') {
      section = marker;
      script[marker] += body;
    } else if (marker.startsWith('phase ')) {
      section = 'phase';
      script.phases.push({ name: marker.slice(6).trim(), steps: [] });
      // Text between a phase marker and its first step is commentary.
    } else {
      const phase = script.phases.at(-1);
      if (section !== 'phase' || !phase) throw new Error(`generate.sql: "-- @${marker}" outside a phase`);
      const m = /^step (.+?)(?:\s+@split\((\w+)\))?$/.exec(marker)!;
      phase.steps.push({ name: m[1]!.trim(), sql: body, split: m[2] });
    }
  }
  if (!script.phases.some((p) => p.steps.length > 0)) throw new Error('generate.sql has no "-- @step" sections');
  return script;
}

const sqlFile = (name: string) => readFile(fileURLToPath(new URL(name, import.meta.url)), 'utf8');

// Session settings for a bulk load, on every connection used. Saved first and restored
// afterwards, because the connections may be the caller's.
const SESSION_SETTINGS: Record<string, string> = {
  maintenance_work_mem: '1GB',
  synchronous_commit: 'off',
  statement_timeout: '0',
  // JIT-compiling the big INSERT ... SELECT expressions costs more than it saves.
  jit: 'off',
  // generate.sql pins it (dates depend on it); listed here so that it is restored.
  TimeZone: 'UTC',
};

/**
 * Running in parallel, a @split step is cut into id ranges of at least this many rows,
 * at most 4 per connection: enough pieces for the connections to finish together.
 */
const MIN_CHUNK_ROWS = 100_000;

function isPool(db: pg.ClientBase | pg.Pool): db is pg.Pool {
  return 'totalCount' in db && 'idleCount' in db;
}

interface Task {
  step: string;
  label: string;
  sql: string;
}

/**
 * Drops and recreates schema `crm`, fills it at `scale` and returns the build time,
 * the size and the exact row counts. Deterministic: the same scale gives the same data.
 * With a Pool, up to `parallel` connections are taken for the whole build (session
 * settings and temporary helper functions live on them); with a client, that one. The
 * connections must not be inside a transaction block (the build ends with VACUUM).
 */
export async function generateCrm(db: pg.ClientBase | pg.Pool, opts: GenerateCrmOptions): Promise<GenerateCrmResult> {
  const params = crmSqlParams(opts.scale);
  const log = opts.log ?? (() => undefined);
  const schemaSql = await sqlFile('./schema.sql');
  const script = parseGenerateSql(await sqlFile('./generate.sql'));
  const substitute = (sql: string, extra: Record<string, number> = {}) =>
    substituteSqlParams(sql, { ...params, ...extra });

  const wanted = isPool(db) ? Math.max(1, Math.min(opts.parallel ?? 2, db.options.max ?? 10)) : 1;
  const clients: pg.ClientBase[] = [];
  const saved = new Map<pg.ClientBase, Record<string, string>>();
  const steps: Record<string, number> = {};
  const phases: Record<string, number> = {};
  let failed = false;
  try {
    if (isPool(db)) {
      for (let i = 0; i < wanted; i++) clients.push(await db.connect());
    } else {
      clients.push(db);
    }
    for (const client of clients) {
      const before: Record<string, string> = {};
      for (const name of Object.keys(SESSION_SETTINGS)) {
        const { rows } = await client.query<{ v: string }>('select current_setting($1) as v', [name]);
        before[name] = rows[0]!.v;
      }
      saved.set(client, before);
      for (const [name, value] of Object.entries(SESSION_SETTINGS)) {
        await client.query('select set_config($1, $2, false)', [name, value]);
      }
    }

    log(
      `generating crm at scale ${opts.scale}: ${params.customers} customers, ${params.events} events, ` +
        `${params.orders} orders, ${params.order_items} order items, ${params.loyalty_points} loyalty rows ` +
        `(${clients.length} connection${clients.length > 1 ? 's' : ''})`,
    );
    const started = process.hrtime.bigint();
    try {
      await runTask(clients[0]!, { step: 'schema', label: 'schema', sql: schemaSql }, steps, log);
      const setup = substitute(script.setup);
      for (const client of clients) await client.query(setup);

      for (const phase of script.phases) {
        const t0 = process.hrtime.bigint();
        const tasks = phase.steps.flatMap((step) => expandStep(step, params, clients.length, substitute));
        await runConcurrently(clients, tasks, steps, log);
        phases[phase.name] = Number(process.hrtime.bigint() - t0) / 1e9;
        if (clients.length > 1) log(`phase ${phase.name}: ${phases[phase.name]!.toFixed(2)} s`);
      }
    } finally {
      const cleanup = substitute(script.cleanup);
      if (cleanup.trim()) await Promise.all(clients.map((c) => c.query(cleanup).catch(() => undefined)));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;

    const client = clients[0]!;
    const counts = await crmCounts(client);
    const bytes = await crmBytes(client);
    log(`crm built in ${seconds.toFixed(1)} s, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
    return { seconds, bytes, counts, steps, phases, connections: clients.length };
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    for (const [client, before] of saved) {
      for (const [name, value] of Object.entries(before)) {
        await client.query('select set_config($1, $2, false)', [name, value]).catch(() => undefined);
      }
    }
    // After a failure a pooled connection may be mid-statement: let the pool discard it.
    if (isPool(db)) for (const c of clients) (c as pg.PoolClient).release(failed ? true : undefined);
  }
}

/** One task, or one per id range for a @split step when several connections share the work. */
function expandStep(
  step: Step,
  params: Record<string, number>,
  connections: number,
  substitute: (sql: string, extra?: Record<string, number>) => string,
): Task[] {
  if (!step.split) return [{ step: step.name, label: step.name, sql: substitute(step.sql) }];
  const total = params[step.split];
  if (total === undefined) throw new Error(`generate.sql: @split(${step.split}) names no count`);
  const chunks = connections > 1 ? Math.max(1, Math.min(4 * connections, Math.ceil(total / MIN_CHUNK_ROWS))) : 1;
  const tasks: Task[] = [];
  for (let k = 0; k < chunks; k++) {
    const from = Math.floor((total * k) / chunks) + 1;
    const to = Math.floor((total * (k + 1)) / chunks);
    if (to < from && chunks > 1) continue;
    tasks.push({
      step: step.name,
      label: chunks > 1 ? `${step.name} [${from}..${to}]` : step.name,
      sql: substitute(step.sql, { [`${step.split}_from`]: from, [`${step.split}_to`]: to }),
    });
  }
  return tasks;
}

/** Runs the tasks in order on the clients, each client taking the next task when free. */
async function runConcurrently(
  clients: pg.ClientBase[],
  tasks: Task[],
  steps: Record<string, number>,
  log: (s: string) => void,
): Promise<void> {
  let next = 0;
  let error: unknown;
  const worker = async (client: pg.ClientBase) => {
    while (error === undefined && next < tasks.length) {
      const task = tasks[next++]!;
      try {
        await runTask(client, task, steps, log);
      } catch (err) {
        error ??= err;
      }
    }
  };
  await Promise.all(clients.map(worker));
  if (error !== undefined) throw error;
}

async function runTask(client: pg.ClientBase, task: Task, steps: Record<string, number>, log: (s: string) => void) {
  const t0 = process.hrtime.bigint();
  try {
    await client.query(task.sql);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(`crm generation failed in step "${task.label}": ${msg}`, { cause: err });
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  steps[task.step] = (steps[task.step] ?? 0) + s;
  log(`  ${task.label}: ${s.toFixed(2)} s`);
}

/** Exact row counts of the crm tables and of each events partition. */
export async function crmCounts(db: pg.ClientBase | pg.Pool): Promise<Record<string, number>> {
  const names = [...CRM_TABLES, ...CRM_EVENT_PARTITIONS];
  const { rows } = await db.query<{ name: string; n: string }>(
    names.map((t) => `select '${t}' as name, count(*) as n from crm.${t}`).join(' union all '),
  );
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = Number(rows.find((r) => r.name === name)?.n ?? 0);
  return counts;
}

/** Total size of schema crm: every table with its indexes and TOAST (bytes). */
export async function crmBytes(db: pg.ClientBase | pg.Pool): Promise<number> {
  const { rows } = await db.query<{ bytes: string }>(
    `select coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint as bytes
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'crm' and c.relkind in ('r', 'm')`,
  );
  return Number(rows[0]!.bytes);
}
