// Retention at scale: pii.preview_retention and pii.enforce_retention of a policy that
// selects the bulk subjects' number of customers (50,000 of 1,000,000 at scale 1), against
// the policy's query alone (the floor: Lethe cannot be faster than the query it runs).
// Enforcement runs in a transaction that is rolled back, so every sample files the same
// request (resolve, items, tombstones, job) from the same state.
import type pg from 'pg';
import { median, roundOrder, timed } from './stats.js';

export interface RetentionResult {
  candidates: number;
  samples: { query: number[]; preview: number[]; enforce: number[] };
  medians: { query: number; preview: number; enforce: number };
}

export const RETENTION_POLICY = 'bench-inactive';
const PREVIEW_INDEXES: ReadonlyArray<readonly [string, string]> = [
  ['orders_customer_id_include_id_idx', 'crm.orders (customer_id) include (id)'],
  [
    'orders_pii_customer_id_idx',
    'crm.orders (customer_id) where shipping_name is not null or shipping_address is not null or billing_email is not null',
  ],
  ['order_items_gift_message_order_id_idx', 'crm.order_items (order_id) where gift_message is not null'],
];

export async function benchRetention(
  db: pg.Client,
  opts: { subjects: number; pairs: number; log: (s: string) => void },
): Promise<RetentionResult> {
  // The documented indexes (docs/retention.md): the inactive-customers template's, and the
  // ones that let the preview count from indexes alone: orders' parent keys for the order
  // items (include (id)), and partial indexes on the rows that still hold PII (dropped at the
  // end: the later sections measure erasure without them, as before).
  await db.query('create index if not exists customers_created_at_idx on crm.customers (created_at)');
  for (const [name, definition] of PREVIEW_INDEXES) {
    await db.query(`create index if not exists ${name} on ${definition}`);
  }
  // The erasure sections' rolled-back DELETEs cleared the visibility map of every events and
  // loyalty page they touched and left no dead rows, so autovacuum never comes back: without
  // this the counts would read every row (docs/retention.md, "Vacuumed tables").
  await db.query('vacuum (analyze) crm.customers, crm.orders, crm.order_items, crm.events, crm.loyalty_points');
  const { rows } = await db.query<{ cutoff: Date }>(
    'select created_at as cutoff from crm.customers order by created_at offset $1 limit 1',
    [opts.subjects],
  );
  const query = `select c.id from crm.customers c where c.created_at < '${rows[0]!.cutoff.toISOString()}'::timestamptz`;
  await db.query(`select pii.set_retention_policy($1, $2, $3, schedule => 'hourly')`, [
    RETENTION_POLICY,
    query,
    opts.subjects,
  ]);
  const { rows: v } = await db.query<{ version: number }>(
    'select version from pii.retention_policies where policy_name = $1',
    [RETENTION_POLICY],
  );
  await db.query('select pii.approve_retention($1, $2)', [RETENTION_POLICY, v[0]!.version]);

  const samples: RetentionResult['samples'] = { query: [], preview: [], enforce: [] };
  let candidates = 0;
  const sides = ['query', 'preview', 'enforce'] as const;
  for (let round = 0; round < opts.pairs; round++) {
    for (const side of roundOrder(sides, round)) {
      if (side === 'query') {
        const t = await timed(() => db.query(`select count(*) from (${query}) q`));
        samples.query.push(t.seconds);
      } else if (side === 'preview') {
        const t = await timed(() => db.query('select candidates from pii.preview_retention($1)', [RETENTION_POLICY]));
        candidates = Number(t.value.rows[0].candidates);
        samples.preview.push(t.seconds);
      } else {
        await db.query('begin');
        try {
          const t = await timed(() => db.query('select outcome from pii.enforce_retention($1)', [RETENTION_POLICY]));
          if (t.value.rows[0].outcome !== 'requested') throw new Error(`enforce_retention: ${t.value.rows[0].outcome}`);
          samples.enforce.push(t.seconds);
        } finally {
          await db.query('rollback');
        }
      }
    }
    opts.log(
      `  retention round ${round + 1}: query ${samples.query.at(-1)!.toFixed(2)} s, preview ${samples.preview.at(-1)!.toFixed(2)} s, enforce ${samples.enforce.at(-1)!.toFixed(2)} s`,
    );
  }
  await db.query(`drop index ${PREVIEW_INDEXES.map(([name]) => `crm.${name}`).join(', ')}`);
  return {
    candidates,
    samples,
    medians: { query: median(samples.query), preview: median(samples.preview), enforce: median(samples.enforce) },
  };
}
