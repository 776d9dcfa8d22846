// Proof that two erasure methods leave the same database state, taken inside the
// transaction of a run (before its rollback):
//   - rows written, from pg_stat_xact_user_tables (inserted, updated, deleted per table);
//   - for tables whose rows are kept: a checksum (count + md5 of the rows in key order) of
//     every row that belongs to the subjects or was written by the run (xmin >= the run's
//     first transaction id), so a stray change to another subject's row shows too;
//   - for tables whose rows are deleted: how many rows of the subjects are left (0) and
//     how many rows the run deleted;
//   - tables that must stay untouched (daily_revenue): no row written at all.
import type pg from 'pg';

export type RowsWritten = Record<string, { ins: number; upd: number; del: number }>;

export interface StateFingerprint {
  rowsWritten: RowsWritten;
  /** table -> "count:md5" of its subjects' (and written) rows, or "left:<n> deleted:<n>". */
  tables: Record<string, string>;
}

/** Rows written by the current transaction, per crm table (partitions summed to their parent). */
export async function rowsWritten(db: pg.ClientBase): Promise<RowsWritten> {
  const { rows } = await db.query<{ t: string; ins: string; upd: string; del: string }>(
    `select coalesce(pn.nspname || '.' || p.relname, s.schemaname || '.' || s.relname) as t,
            sum(s.n_tup_ins) as ins, sum(s.n_tup_upd) as upd, sum(s.n_tup_del) as del
       from pg_stat_xact_user_tables s
       left join pg_inherits i on i.inhrelid = s.relid
       left join pg_class p on p.oid = i.inhparent
       left join pg_namespace pn on pn.oid = p.relnamespace
      where s.schemaname = 'crm'
      group by 1 order by 1`,
  );
  const out: RowsWritten = {};
  for (const r of rows) out[r.t] = { ins: Number(r.ins), upd: Number(r.upd), del: Number(r.del) };
  return out;
}

/**
 * Rows written between two rowsWritten() snapshots taken in the same transaction. (The
 * view also holds counts of earlier transactions not yet flushed to the shared
 * statistics, which a backend does at most once a second when idle: only a difference
 * taken inside one transaction is exact.)
 */
export function writtenSince(before: RowsWritten, after: RowsWritten): RowsWritten {
  const out: RowsWritten = {};
  for (const [t, a] of Object.entries(after)) {
    const b = before[t] ?? { ins: 0, upd: 0, del: 0 };
    const d = { ins: a.ins - b.ins, upd: a.upd - b.upd, del: a.del - b.del };
    if (d.ins || d.upd || d.del) out[t] = d;
  }
  return out;
}

/**
 * Call inside the run's transaction, after the method ran. firstXid: txid_current() taken
 * before it; written: the run's rows written (writtenSince).
 */
export async function fingerprint(
  db: pg.ClientBase,
  subjects: string[],
  firstXid: number,
  written: RowsWritten,
): Promise<StateFingerprint> {
  const tables: Record<string, string> = {};
  // Hash joins, not a subplan per row: give the checksums memory (this transaction only).
  await db.query(`set local work_mem = '256MB'`);
  // Rows of the subjects (checksummed), and rows the run wrote that are not theirs (must be none).
  const kept: Array<[string, string, string]> = [
    ['crm.customers', `t.id = any ($1::bigint[])`, `t.id = any ($1::bigint[])`],
    ['crm.orders', `t.customer_id = any ($1::bigint[])`, `t.customer_id = any ($1::bigint[])`],
    [
      'crm.order_items',
      `t.order_id in (select o.id from crm.orders o where o.customer_id = any ($1::bigint[]))`,
      `exists (select from crm.orders o where o.id = t.order_id and o.customer_id = any ($1::bigint[]))`,
    ],
  ];
  for (const [table, belongs, belongsRow] of kept) {
    const { rows } = await db.query<{ n: string; md5: string | null; stray: string }>(
      `select count(*) as n, md5(string_agg(t::text, E'\\n' order by t.id)) as md5,
              (select count(*) from ${table} t where (t.xmin::text)::bigint >= $2 and not (${belongsRow})) as stray
         from ${table} t where ${belongs}`,
      [subjects, firstXid],
    );
    const r = rows[0]!;
    tables[table] = `${r.n}:${r.md5 ?? '-'}${Number(r.stray) ? ` +${r.stray} other rows written` : ''}`;
  }
  for (const table of ['crm.events', 'crm.loyalty_points']) {
    const { rows } = await db.query<{ n: string }>(
      `select count(*) as n from ${table} where customer_id = any ($1::bigint[])`,
      [subjects],
    );
    tables[table] = `left:${rows[0]!.n} deleted:${written[table]?.del ?? 0}`;
  }
  const untouched = written['crm.daily_revenue'];
  tables['crm.daily_revenue'] =
    untouched && untouched.ins + untouched.upd + untouched.del > 0 ? 'WRITTEN' : 'untouched';
  return { rowsWritten: written, tables };
}

/** Tables whose state differs between two fingerprints (empty: same state). */
export function stateDifferences(a: StateFingerprint, b: StateFingerprint): string[] {
  const names = new Set([...Object.keys(a.tables), ...Object.keys(b.tables)]);
  return [...names].filter((t) => a.tables[t] !== b.tables[t]).sort();
}

/** The run's first transaction id, as a 32-bit xid comparable with xmin. Assigns one. */
export async function currentXid(db: pg.ClientBase): Promise<number> {
  const { rows } = await db.query<{ x: string }>(`select (txid_current() % 4294967296)::text as x`);
  return Number(rows[0]!.x);
}
