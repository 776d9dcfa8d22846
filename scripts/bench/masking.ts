// Item 5: masked views (pii.apply_masking, schema masked) against the base tables, on the
// same rows, sides alternating:
//   - full scan of customers, as COPY (select * ...) TO STDOUT read and discarded by the
//     client (the server computes and sends every value: the strict measure), and as a
//     cursor fetch with values kept as text (what psql does);
//   - point lookup by key (p50 over 1,000 lookups), and whether it uses the index;
//   - a support query: a customer and their last 10 orders.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { median, quantile, roundOrder, timed } from './stats.js';

export interface Compared {
  masked: number[];
  base: number[];
  maskedMedian: number;
  baseMedian: number;
}

export type MaskingResult =
  | { status: 'pending'; reason: string }
  | {
      status: 'measured';
      views: string[];
      scanCopy: Compared & { maskedBytes: number; baseBytes: number };
      scanFetch: Compared;
      lookups: number;
      lookup: Compared & { maskedP95: number; baseP95: number };
      lookupUsesIndex: boolean;
      lookupPlan: string;
      support: Compared;
      supportPlan: string;
    };

function compared(masked: number[], base: number[]): Compared {
  return { masked, base, maskedMedian: median(masked), baseMedian: median(base) };
}

async function copyOut(db: pg.ClientBase, sql: string): Promise<number> {
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      cb();
    },
  });
  await pipeline(db.query(copyTo(`copy (${sql}) to stdout`)), sink);
  return bytes;
}

const rawText = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

async function fetchAll(db: pg.ClientBase, sql: string): Promise<number> {
  let n = 0;
  await db.query('begin');
  try {
    await db.query(`declare bench_fetch no scroll cursor for ${sql}`);
    for (;;) {
      const r = await db.query({ text: 'fetch 50000 from bench_fetch', rowMode: 'array', types: rawText });
      n += r.rowCount ?? 0;
      if (!r.rowCount) break;
    }
  } finally {
    await db.query('rollback');
  }
  return n;
}

export async function benchMasking(
  db: pg.Client,
  opts: { pairs: number; lookups: number; log: (s: string) => void },
): Promise<MaskingResult> {
  const { log } = opts;
  const { rows: fn } = await db.query<{ ok: boolean }>(
    `select to_regprocedure('pii.apply_masking()') is not null as ok`,
  );
  if (!fn[0]!.ok) return { status: 'pending', reason: 'pii.apply_masking() does not exist in this build' };
  const { rows: built } = await db.query<{ view_name: string }>('select view_name from pii.apply_masking()');
  const { rows: have } = await db.query<{ c: boolean; o: boolean }>(
    `select to_regclass('masked.customers') is not null as c, to_regclass('masked.orders') is not null as o`,
  );
  if (!have[0]!.c || !have[0]!.o)
    return { status: 'pending', reason: 'pii.apply_masking() built no masked.customers / masked.orders' };
  await db.query('analyze crm.customers');

  // Full scan.
  log('masking: full scan of customers (COPY TO STDOUT and cursor fetch)');
  const copyM: number[] = [];
  const copyB: number[] = [];
  let maskedBytes = 0;
  let baseBytes = 0;
  await copyOut(db, 'select * from masked.customers'); // warm-up
  await copyOut(db, 'select * from crm.customers');
  for (let round = 0; round < opts.pairs; round++) {
    for (const side of roundOrder(['masked', 'base'] as const, round)) {
      const r = await timed(() => copyOut(db, `select * from ${side === 'masked' ? 'masked' : 'crm'}.customers`));
      if (side === 'masked') {
        copyM.push(r.seconds);
        maskedBytes = r.value;
      } else {
        copyB.push(r.seconds);
        baseBytes = r.value;
      }
    }
  }
  const fetchM: number[] = [];
  const fetchB: number[] = [];
  for (let round = 0; round < opts.pairs; round++) {
    for (const side of roundOrder(['masked', 'base'] as const, round)) {
      const r = await timed(() => fetchAll(db, `select * from ${side === 'masked' ? 'masked' : 'crm'}.customers`));
      (side === 'masked' ? fetchM : fetchB).push(r.seconds);
    }
  }

  // Point lookups by key and the support query, on deterministic random customers.
  const { rows: ids } = await db.query<{ id: string }>(
    `select id::text as id from crm.customers order by hashint8extended(id, 5) limit $1`,
    [opts.lookups],
  );
  const lookupSql = (schema: string) => `select * from ${schema}.customers where id = $1`;
  const supportSql = (schema: string) => `select c.*, o.*
      from ${schema}.customers c
      left join lateral (select * from ${schema}.orders o where o.customer_id = c.id order by o.ordered_at desc limit 10) o on true
     where c.id = $1`;
  const pointLoop = async (sqlOf: (schema: string) => string, name: string) => {
    const m: number[] = [];
    const b: number[] = [];
    const q = (schema: string, id: string) =>
      db.query({ name: `${name}_${schema}`, text: sqlOf(schema), values: [id] });
    await q('masked', ids[0]!.id);
    await q('crm', ids[0]!.id);
    for (let i = 0; i < ids.length; i++) {
      for (const side of roundOrder(['masked', 'crm'] as const, i)) {
        const r = await timed(() => q(side, ids[i]!.id));
        (side === 'masked' ? m : b).push(r.seconds);
      }
    }
    return { m, b };
  };
  log(`masking: ${ids.length} point lookups and support queries`);
  const lookup = await pointLoop(lookupSql, 'lookup');
  const support = await pointLoop(supportSql, 'support');
  const explain = async (sql: string) =>
    (await db.query<{ 'QUERY PLAN': string }>(`explain (costs off) ${sql.replace('$1', ids[0]!.id)}`)).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
  const lookupPlan = await explain(lookupSql('masked'));
  const supportPlan = await explain(supportSql('masked'));

  return {
    status: 'measured',
    views: built.map((v) => v.view_name),
    scanCopy: { ...compared(copyM, copyB), maskedBytes, baseBytes },
    scanFetch: compared(fetchM, fetchB),
    lookups: ids.length,
    lookup: { ...compared(lookup.m, lookup.b), maskedP95: quantile(lookup.m, 0.95), baseP95: quantile(lookup.b, 0.95) },
    lookupUsesIndex: /Index (Only )?Scan/.test(lookupPlan),
    lookupPlan,
    support: compared(support.m, support.b),
    supportPlan,
  };
}
