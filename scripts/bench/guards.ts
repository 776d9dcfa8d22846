// Item 6: the re-ingestion guards' cost on ingestion. A nightly sync COPYs a month of
// events (1,000,000 rows at scale 1) into crm.events, with Lethe's guard triggers and
// without them (the same triggers disabled), alternating, after the bulk erasure has left
// its tombstones (50,000 at scale 1), so the guards have real work: the rows of erased
// subjects (about 5% of the rows, customers being drawn uniformly) are scrubbed, which for
// events (on_erase delete) means deleted. Without guards = pii.set_guard(..., 'off'), which
// drops the triggers.
//
// The rows go to a partition of their own (November 2026), created by the benchmark the
// way an application adds next month's partition; TRUNCATE of that partition restores the
// table between runs without touching the 20 million existing rows.
//
// A third side, alternating with the other two: the same guarded COPY with identifier
// tombstones in place (issue 12): crm.customers.email registered as an identifier and one
// email identifier tombstone per tombstoned subject, as erasures of identified subjects
// leave them. crm.events holds no identifier, so its guard must not pay for them.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { profileStatements, type StatementStat } from './profile.js';
import { median, roundOrder, timed } from './stats.js';

export interface GuardResult {
  rows: number;
  tombstones: number;
  pairs: number;
  guarded: number[];
  unguarded: number[];
  guardedMedian: number;
  unguardedMedian: number;
  /** Identifier tombstones in place on the third side, and its runs. */
  identifierTombstones: number;
  withIdentifiers: number[];
  withIdentifiersMedian: number;
  /** Rows of tombstoned subjects among the COPYed rows, and how many the guards removed. */
  tombstonedRows: number;
  scrubbedRows: number;
  statements: StatementStat[];
}

const KINDS = [
  'email_open',
  'email_click',
  'login',
  'newsletter_signup',
  'page_view',
  'add_to_cart',
  'search',
  'session_end',
];
const PAGES = ['/', '/cart', '/checkout', '/account', '/blog/spring-sale', '/help/returns'];

/** Deterministic 32-bit mixing (splitmix-like) so the same scale gives the same file. */
function mix(n: number): number {
  let x = (n + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** COPY text-format rows for crm.events, in chunks of ~1 MB. */
export function eventRows(n: number, firstId: number, customers: number): string[] {
  const chunks: string[] = [];
  const start = Date.parse('2026-11-01T00:00:00Z');
  const span = 30 * 86_400_000;
  let buf = '';
  for (let i = 0; i < n; i++) {
    const h = mix(i);
    const cid = 1 + (mix(i ^ 0x5bd1e995) % customers);
    const at = new Date(start + Math.floor((i / n) * span)).toISOString();
    const r = h % 100;
    const kind =
      r < 12
        ? KINDS[0]
        : r < 22
          ? KINDS[1]
          : r < 26
            ? KINDS[2]
            : r < 30
              ? KINDS[3]
              : r < 75
                ? KINDS[4]
                : r < 88
                  ? KINDS[5]
                  : r < 96
                    ? KINDS[6]
                    : KINDS[7];
    let payload: string;
    if (r < 30) payload = `{"email": "customer${cid}@example.com", "campaign": "cmp-${h % 40}"}`;
    else if (r < 75) payload = `{"page": "${PAGES[h % PAGES.length]}", "utm_source": "newsletter"}`;
    else if (r < 88) payload = `{"sku": "SKU-${String(h % 2000).padStart(5, '0')}", "quantity": ${1 + (h % 3)}}`;
    else if (r < 96) payload = `{"query": "rain jacket", "results": ${h % 60}}`;
    else payload = '\\N';
    buf += `${firstId + i}\t${cid}\t${at}\t${kind}\t${payload}\n`;
    if (buf.length > 1 << 20) {
      chunks.push(buf);
      buf = '';
    }
  }
  if (buf) chunks.push(buf);
  return chunks;
}

async function copyEvents(db: pg.ClientBase, chunks: string[]): Promise<void> {
  const stream = db.query(copyFrom('copy crm.events (id, customer_id, occurred_at, kind, payload) from stdin'));
  await pipeline(Readable.from(chunks), stream);
}

export async function benchGuards(
  db: pg.Client,
  opts: { rows: number; pairs: number; pgss: boolean; log: (s: string) => void },
): Promise<GuardResult> {
  const { log } = opts;
  await db.query(`create table if not exists crm.events_2026_11 partition of crm.events
                    for values from ('2026-11-01 00:00:00+00') to ('2026-12-01 00:00:00+00')`);
  const { rows: info } = await db.query<{ first: string; customers: string; tombstones: string; guard: string }>(
    `select (select max(id) + 1 from crm.events) as first,
            (select count(*) from crm.customers) as customers,
            (select count(*) from pii_internal.tombstones) as tombstones,
            (select guard_mode from pii.tables where relid = 'crm.events'::regclass) as guard`,
  );
  const { first, customers, tombstones, guard } = info[0]!;
  log(`guards: ${opts.rows} event rows into crm.events (guard mode ${guard}, ${tombstones} tombstones)`);
  const chunks = eventRows(opts.rows, Number(first), Number(customers));

  // Without guards means without the triggers, on the table and on its partitions (Lethe
  // guards each partition too, and re-syncs them on DDL): pii.set_guard drops and recreates
  // them all, as a DBA would.
  const setTriggers = (on: boolean) => db.query(`select pii.set_guard('crm.events', $1)`, [on ? guard : 'off']);
  const reset = async () => {
    await db.query('truncate crm.events_2026_11');
    await db.query('checkpoint');
  };
  const copyOnce = async (guarded: boolean) => {
    await reset();
    if (!guarded) await setTriggers(false);
    try {
      return (await timed(() => copyEvents(db, chunks))).seconds;
    } finally {
      if (!guarded) await setTriggers(true);
    }
  };

  // The identifier tombstones of the third side, kept aside between its runs.
  const { rows: kindRows } = await db.query<{ kind: string; hash_sql: string; registered: boolean }>(
    `select s.kind, pii_internal.identifier_hash_sql(s.kind, 'x.v') as hash_sql,
            exists (select from pii.identifiers i where i.relid = 'crm.customers'::regclass) as registered
       from pii.subject_table s where s.relid = 'crm.customers'::regclass`,
  );
  const { kind, hash_sql: hashSql, registered } = kindRows[0]!;
  if (!registered) await db.query(`select pii.register_identifier('crm.customers', 'email', 'email')`);
  await db.query(`drop table if exists bench.identifier_tombstones`);
  await db.query(
    `create table bench.identifier_tombstones as
       select $1::text as kind, ${hashSql} as identifier_hash, x.h as subject_hash, 'email'::text as identifier
         from (select 'email' || chr(31) || 'customer' || c.id || '@example.com' as v, pii_internal.subject_hash(null, c.id::text) as h
                 from crm.customers c) x
         join pii_internal.tombstones t on t.subject_hash = x.h`,
    [kind],
  );
  const identifierTombstones = Number(
    (await db.query<{ n: string }>('select count(*) as n from bench.identifier_tombstones')).rows[0]!.n,
  );
  const setIdentifiers = async (on: boolean) => {
    await db.query(
      on
        ? `insert into pii_internal.identifier_tombstones (kind, identifier_hash, subject_hash, identifier)
             select * from bench.identifier_tombstones on conflict do nothing`
        : `delete from pii_internal.identifier_tombstones i using bench.identifier_tombstones b
            where i.kind = b.kind and i.identifier_hash = b.identifier_hash and i.subject_hash = b.subject_hash`,
    );
  };
  type Side = 'guarded' | 'identifiers' | 'unguarded';
  const copySide = async (side: Side) => {
    if (side !== 'identifiers') return copyOnce(side === 'guarded');
    await setIdentifiers(true);
    try {
      return await copyOnce(true);
    } finally {
      await setIdentifiers(false);
    }
  };

  // Warm-up (not timed): also tells how many rows the guards remove.
  await copyOnce(false);
  const { rows: hits } = await db.query<{ n: string }>(
    `select count(*) as n from crm.events_2026_11 e
      where exists (select from pii_internal.tombstones t where t.subject_hash = pii_internal.subject_hash(null, e.customer_id::text))`,
  );
  await copyOnce(true);
  const { rows: left } = await db.query<{ n: string }>('select count(*) as n from crm.events_2026_11');

  const runs: Record<Side, number[]> = { guarded: [], identifiers: [], unguarded: [] };
  for (let round = 0; round < opts.pairs; round++) {
    for (const side of roundOrder(['guarded', 'identifiers', 'unguarded'] as const, round)) {
      const s = await copySide(side);
      runs[side].push(s);
      log(`round ${round + 1}/${opts.pairs}: COPY ${side.padEnd(11)} ${s.toFixed(2)} s`);
    }
  }
  await db.query('drop table bench.identifier_tombstones');
  if (!registered) await db.query(`select pii.unregister_identifier('crm.customers', 'email')`);
  const { guarded, unguarded } = runs;

  let statements: StatementStat[] = [];
  if (opts.pgss) {
    await reset();
    statements = (await profileStatements(db, true, () => copyEvents(db, chunks), 10)).statements;
  }
  await db.query('truncate crm.events_2026_11');
  return {
    rows: opts.rows,
    tombstones: Number(tombstones),
    pairs: opts.pairs,
    guarded,
    unguarded,
    guardedMedian: median(guarded),
    unguardedMedian: median(unguarded),
    identifierTombstones,
    withIdentifiers: runs.identifiers,
    withIdentifiersMedian: median(runs.identifiers),
    tombstonedRows: Number(hits[0]!.n),
    scrubbedRows: opts.rows - Number(left[0]!.n),
    statements,
  };
}
