// The demo CRM generator (src/demo/crm): shape, counts, partition routing, payloads with
// emails, and determinism (same scale => same data, whatever the connections used).
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crmRowCounts, generateCrm, type GenerateCrmResult } from '../src/demo/crm/generateCrm.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const SCALE = 0.001;
const expected = crmRowCounts(SCALE);

let db: TestDatabase;
let first: GenerateCrmResult;

/** md5 of a sample of each table (every 7th row, in id order), computed in UTC. */
async function checksums(): Promise<Record<string, string>> {
  const client = await db.pool.connect();
  try {
    await client.query('begin');
    await client.query(`set local timezone = 'UTC'`);
    const { rows } = await client.query<{ t: string; md5: string }>(`
      select 'customers' as t, md5(string_agg(c::text, '|' order by id)) as md5 from crm.customers c where id % 7 = 0
      union all
      select 'events', md5(string_agg(e::text, '|' order by id)) from crm.events e where id % 7 = 0
      union all
      select 'orders', md5(string_agg(o::text, '|' order by id)) from crm.orders o where id % 7 = 0
      union all
      select 'order_items', md5(string_agg(i::text, '|' order by id)) from crm.order_items i where id % 7 = 0
      union all
      select 'loyalty_points', md5(string_agg(l::text, '|' order by id)) from crm.loyalty_points l where id % 7 = 0
      union all
      select 'daily_revenue', md5(string_agg(d::text, '|' order by day, brand_id)) from crm.daily_revenue d`);
    await client.query('commit');
    return Object.fromEntries(rows.map((r) => [r.t, r.md5]));
  } finally {
    client.release();
  }
}

beforeAll(async () => {
  db = await createTestDatabase('crm_dataset');
  // A pool: the build runs on two connections at once.
  first = await generateCrm(db.pool, { scale: SCALE, parallel: 2 });
});
afterAll(() => db?.drop());

describe('crm dataset at scale 0.001', () => {
  it('has the requested row counts, reported exactly', async () => {
    expect(expected).toEqual({
      customers: 1000,
      events: 20000,
      orders: 5000,
      order_items: 10000,
      loyalty_points: 3000,
    });
    const { rows } = await db.query<{
      customers: number;
      events: number;
      orders: number;
      order_items: number;
      loyalty_points: number;
      daily_revenue: number;
    }>(`
      select (select count(*) from crm.customers)::int as customers,
             (select count(*) from crm.events)::int as events,
             (select count(*) from crm.orders)::int as orders,
             (select count(*) from crm.order_items)::int as order_items,
             (select count(*) from crm.loyalty_points)::int as loyalty_points,
             (select count(*) from crm.daily_revenue)::int as daily_revenue`);
    const actual = rows[0]!;
    expect(actual).toMatchObject(expected);
    expect(actual.daily_revenue).toBeGreaterThan(0);
    expect(first.counts).toMatchObject({ ...expected, daily_revenue: actual.daily_revenue });
    expect(first.connections).toBe(2);
    expect(first.seconds).toBeGreaterThan(0);
    expect(first.bytes).toBeGreaterThan(1_000_000);
  });

  it('has exactly the expected tables, columns, keys and indexes', async () => {
    const { rows: cols } = await db.query<{ t: string; cols: string }>(`
      select c.relname as t, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || case when a.attnotnull then ' not null' else '' end, ', ' order by a.attnum) as cols
      from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
      where c.relnamespace = 'crm'::regnamespace and c.relkind in ('r', 'p') and not c.relispartition
      group by c.relname order by c.relname`);
    expect(Object.fromEntries(cols.map((r) => [r.t, r.cols]))).toEqual({
      customers:
        'id bigint not null, brand_id integer not null, email text, first_name text, last_name text, phone text, birth_date date, ' +
        'city text, country text, ip_address inet, status text not null, email_opt_out boolean not null, sms_opt_out boolean not null, ' +
        'created_at timestamp with time zone not null, last_seen_at timestamp with time zone, notes text',
      daily_revenue: 'day date not null, brand_id integer not null, orders bigint, revenue numeric',
      events:
        'id bigint not null, customer_id bigint not null, occurred_at timestamp with time zone not null, kind text not null, payload jsonb',
      loyalty_points:
        'id bigint not null, customer_id bigint not null, points integer not null, reason text, created_at timestamp with time zone not null',
      order_items:
        'id bigint not null, order_id bigint not null, sku text not null, quantity integer not null, unit_price numeric(12,2) not null, gift_message text',
      orders:
        'id bigint not null, customer_id bigint not null, ordered_at timestamp with time zone not null, total numeric(12,2) not null, ' +
        'status text not null, shipping_name text, shipping_address text, billing_email text',
    });

    const { rows: idx } = await db.query<{ name: string; def: string }>(`
      select indexrelid::regclass::text as name, pg_get_indexdef(indexrelid) as def
      from pg_index i join pg_class c on c.oid = i.indrelid
      where c.relnamespace = 'crm'::regnamespace and not c.relispartition`);
    expect(idx.map((r) => r.def.replace(' USING btree', '')).sort()).toEqual(
      [
        'CREATE INDEX customers_email_idx ON crm.customers (email)',
        'CREATE UNIQUE INDEX customers_pkey ON crm.customers (id)',
        'CREATE UNIQUE INDEX daily_revenue_pkey ON crm.daily_revenue (day, brand_id)',
        'CREATE INDEX events_customer_id_idx ON ONLY crm.events (customer_id)',
        'CREATE UNIQUE INDEX events_pkey ON ONLY crm.events (id, occurred_at)',
        'CREATE INDEX loyalty_points_customer_id_idx ON crm.loyalty_points (customer_id)',
        'CREATE UNIQUE INDEX loyalty_points_pkey ON crm.loyalty_points (id)',
        'CREATE INDEX order_items_order_id_idx ON crm.order_items (order_id)',
        'CREATE UNIQUE INDEX order_items_pkey ON crm.order_items (id)',
        'CREATE INDEX orders_customer_id_idx ON crm.orders (customer_id)',
        'CREATE UNIQUE INDEX orders_pkey ON crm.orders (id)',
      ].sort(),
    );
    const { rows: pks } = await db.query<{ def: string }>(`
      select conrelid::regclass || ': ' || conname || ' ' || pg_get_constraintdef(oid) as def from pg_constraint
      where connamespace = 'crm'::regnamespace and contype = 'p' and conrelid in (
        select oid from pg_class where relnamespace = 'crm'::regnamespace and not relispartition)`);
    expect(pks.map((r) => r.def).sort()).toEqual(
      [
        'crm.customers: customers_pkey PRIMARY KEY (id)',
        'crm.daily_revenue: daily_revenue_pkey PRIMARY KEY (day, brand_id)',
        'crm.events: events_pkey PRIMARY KEY (id, occurred_at)',
        'crm.loyalty_points: loyalty_points_pkey PRIMARY KEY (id)',
        'crm.order_items: order_items_pkey PRIMARY KEY (id)',
        'crm.orders: orders_pkey PRIMARY KEY (id)',
      ].sort(),
    );

    // Every partition carries both indexes, attached to the parent's.
    const { rows: partIdx } = await db.query<{ n: number }>(`
      select count(*)::int as n from pg_inherits h
      join pg_class i on i.oid = h.inhrelid and i.relkind = 'i'
      where h.inhparent in ('crm.events_pkey'::regclass, 'crm.events_customer_id_idx'::regclass)`);
    expect(partIdx[0]!.n).toBe(8);

    const { rows: fks } = await db.query<{ def: string }>(`
      select conrelid::regclass || ': ' || pg_get_constraintdef(oid) as def from pg_constraint
      where connamespace = 'crm'::regnamespace and contype = 'f' and convalidated`);
    expect(fks.map((r) => r.def).sort()).toEqual([
      'crm.order_items: FOREIGN KEY (order_id) REFERENCES crm.orders(id) ON DELETE CASCADE',
      'crm.orders: FOREIGN KEY (customer_id) REFERENCES crm.customers(id)',
    ]);

    // The generator leaves nothing of its own behind: no function in crm, no storage
    // option (autovacuum is off only during the load), and the tables are vacuumed.
    const { rows: fns } = await db.query<{ n: number }>(
      `select count(*)::int as n from pg_proc where pronamespace = 'crm'::regnamespace`,
    );
    expect(fns[0]!.n).toBe(0);
    const { rows: opts } = await db.query<{ relname: string }>(
      `select relname from pg_class where relnamespace = 'crm'::regnamespace and reloptions is not null`,
    );
    expect(opts).toEqual([]);
    const { rows: stats } = await db.query<{ relname: string }>(`
      select relname from pg_stat_user_tables
      where schemaname = 'crm' and (last_analyze is null or (relname <> 'events' and last_vacuum is null))`);
    expect(stats).toEqual([]);
  });

  it('has three monthly partitions and a default one, and routes events into them', async () => {
    const { rows } = await db.query<{ part: string; bound: string; n: number; outside: number }>(`
      select c.relname as part, pg_get_expr(c.relpartbound, c.oid) as bound,
             (select count(*)::int from crm.events e where e.tableoid = c.oid) as n,
             (select count(*)::int from crm.events e where e.tableoid = c.oid
                and e.occurred_at >= '2026-08-01 00:00+00' and e.occurred_at < '2026-11-01 00:00+00'
                and date_trunc('month', e.occurred_at at time zone 'UTC')
                    <> to_date(substr(c.relname, 8), 'YYYY_MM')) as outside
      from pg_inherits h join pg_class c on c.oid = h.inhrelid
      where h.inhparent = 'crm.events'::regclass order by c.relname`);
    expect(rows.map((r) => r.part)).toEqual(['events_2026_08', 'events_2026_09', 'events_2026_10', 'events_default']);
    expect(rows.at(-1)!.bound).toBe('DEFAULT');
    for (const r of rows) expect(r.n, r.part).toBeGreaterThan(0);
    // Monthly partitions hold only their month; the default one only what no month takes.
    for (const r of rows.slice(0, 3)) expect(r.outside, r.part).toBe(0);
    const { rows: dflt } = await db.query<{ n: number }>(`
      select count(*)::int as n from crm.events_default
      where occurred_at >= '2026-08-01 00:00+00' and occurred_at < '2026-11-01 00:00+00'`);
    expect(dflt[0]!.n).toBe(0);
    expect(rows.reduce((s, r) => s + r.n, 0)).toBe(expected.events);
    for (const r of rows) expect(first.counts[r.part]).toBe(r.n);
  });

  it('puts the customer email in about 30% of the event payloads, with page, utm_source and ip in others', async () => {
    const { rows } = await db.query<{
      email: number;
      wrong_email: number;
      page: number;
      utm: number;
      ip: number;
      total: number;
    }>(`
      select count(*) filter (where e.payload ? 'email')::float / count(*) as email,
             count(*) filter (where e.payload ? 'email' and e.payload->>'email' is distinct from c.email)::int as wrong_email,
             count(*) filter (where e.payload ? 'page')::float / count(*) as page,
             count(*) filter (where e.payload ? 'utm_source')::float / count(*) as utm,
             count(*) filter (where e.payload ? 'ip')::float / count(*) as ip,
             count(*)::int as total
      from crm.events e join crm.customers c on c.id = e.customer_id`);
    const r = rows[0]!;
    expect(r.total).toBe(expected.events);
    expect(r.email).toBeGreaterThan(0.27);
    expect(r.email).toBeLessThan(0.33);
    expect(r.wrong_email).toBe(0);
    expect(r.page).toBeGreaterThan(0.2);
    expect(r.utm).toBeGreaterThan(0.05);
    expect(r.ip).toBeGreaterThan(0.05);
  });

  it('looks like a CRM: plausible customers, skewed activity, consistent orders', async () => {
    const { rows: c } = await db.query(`
      select count(*) filter (where email ~ '^[a-z]+\\.[a-z]+[0-9]+@example\\.com$')::int as emails_ok,
             count(*) filter (where email = lower(first_name || '.' || last_name) || id || '@example.com')::int as emails_match,
             count(*) filter (where phone !~ '^\\+44 7700 9[0-9]{5}$')::int as bad_phones,
             count(distinct brand_id)::int as brands,
             count(*) filter (where notes is not null)::float / count(*) as with_notes,
             count(*) filter (where ip_address is not null)::int as with_ip,
             count(*) filter (where birth_date is not null)::int as with_birth_date
      from crm.customers`);
    expect(c[0]).toMatchObject({ emails_ok: 1000, emails_match: 1000, bad_phones: 0, brands: 2 });
    expect(c[0].with_notes).toBeGreaterThan(0.05);
    expect(c[0].with_notes).toBeLessThan(0.3);
    expect(c[0].with_ip).toBeGreaterThan(800);
    expect(c[0].with_birth_date).toBeGreaterThan(900);

    // Not every customer is equal: the busiest have several times the average.
    const { rows: skew } = await db.query<{ mx: number; avg: number }>(`
      select max(n)::int as mx, avg(n)::float as avg from (select count(*) as n from crm.events group by customer_id) s`);
    expect(skew[0]!.mx).toBeGreaterThan(3 * skew[0]!.avg);

    // Order totals are the sum of their 1 to 3 items; orders come after the signup.
    const { rows: o } = await db.query(`
      select count(*) filter (where o.total <> i.sum)::int as bad_totals,
             min(i.n)::int as min_items, max(i.n)::int as max_items,
             count(*) filter (where o.ordered_at < c.created_at)::int as before_signup
      from crm.orders o
      join crm.customers c on c.id = o.customer_id
      join (select order_id, sum(quantity * unit_price) as sum, count(*) as n from crm.order_items group by order_id) i
        on i.order_id = o.id`);
    expect(o[0]).toEqual({ bad_totals: 0, min_items: 1, max_items: 3, before_signup: 0 });

    // The aggregate is what its definition says.
    const { rows: agg } = await db.query<{ diff: number }>(`
      select count(*)::int as diff from (
        (select (o.ordered_at at time zone 'UTC')::date as day, c.brand_id, count(*) as orders, sum(o.total) as revenue
         from crm.orders o join crm.customers c on c.id = o.customer_id
         where o.status not in ('CANCELLED', 'REFUNDED') group by 1, 2)
        except (select day, brand_id, orders, revenue from crm.daily_revenue)) d`);
    expect(agg[0]!.diff).toBe(0);
  });

  it('is deterministic: a second build, sequential and from another time zone, gives the same data', async () => {
    const before = await checksums();
    // One client (sequential build) whose session time zone is not UTC: the generator
    // pins UTC while it works, then restores the session as it found it.
    const client = new pg.Client({ connectionString: db.url, options: '-c TimeZone=America/New_York' });
    await client.connect();
    try {
      const second = await generateCrm(client, { scale: SCALE });
      expect(second.connections).toBe(1);
      expect(second.counts).toEqual(first.counts);
      const { rows } = await client.query<{ tz: string; jit: string; helpers: number }>(`
        select current_setting('TimeZone') as tz,
               (select count(*)::int from pg_proc where pronamespace = pg_my_temp_schema()) as helpers`);
      expect(rows[0]).toMatchObject({ tz: 'America/New_York', helpers: 0 });
    } finally {
      await client.end();
    }
    expect(await checksums()).toEqual(before);
  });
});
