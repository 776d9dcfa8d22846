// Re-ingestion guards (F11): INSERT, UPDATE, INSERT … ON CONFLICT DO UPDATE and COPY of an
// erased subject's PII into the subject table, a partitioned delete table, an anonymize
// table and a child table reached through its parent, in each guard mode. Whatever the
// mode, no PII of the erased subject is restored; rows of other subjects in the same
// statement are written (scrub, skip) or nothing is (reject, SQLSTATE PII01).
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

type Mode = 'scrub' | 'reject' | 'skip';
type Table = 'customers' | 'events' | 'orders' | 'order_items';
type Op = 'insert' | 'update' | 'upsert' | 'copy';

let db: TestDatabase;
let requestId: string;
/** Subject 1 exists and was erased; 1000..1099 are erased keys with no row yet. */
const ERASED = 1;
const FRESH_ERASED = Array.from({ length: 100 }, (_, i) => 1000 + i);

beforeAll(async () => {
  db = await createTestDatabase('guards');
  await loadFixture(db, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
  const { rows } = await db.query('select pii.request_erasure($1::text[]) as id', [
    [String(ERASED), ...FRESH_ERASED.map(String)],
  ]);
  requestId = rows[0].id;
  while ((await db.query('select pii.process_request_chunk($1) as n', [requestId])).rows[0].n > 0);
  expect((await db.query('select pii.finish_request($1) as s', [requestId])).rows[0].s).toBe('done');
});
afterAll(() => db?.drop());

async function copyIn(sql: string, lines: string[]): Promise<void> {
  const client = await db.pool.connect();
  try {
    await pipeline(Readable.from(lines.map((l) => `${l}\n`)), client.query(copyFrom(sql)));
  } finally {
    client.release();
  }
}

async function one<R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R> {
  return (await db.query(sql, params)).rows[0] as R;
}

/** Per test: a fresh erased key without a row, an existing subject nobody erased, a new id nobody erased. */
interface Ids {
  n: number;
  fresh: number;
  other: number;
  otherNew: number;
  tag: string;
}

/**
 * What one scenario does and what the table looks like afterwards:
 * erased = the erased subject's rows the statement touched (must never hold PII),
 * other = the non-erased subject's rows the statement wrote.
 */
interface Scenario {
  run(ids: Ids): Promise<unknown>;
  /** State after the statement; compared with expected(mode). */
  state(ids: Ids): Promise<unknown>;
  expected(mode: Mode, ids: Ids): unknown;
}

const customersState = async (ids: Ids, erasedIds: number[]) => ({
  erased: (
    await db.query(
      `select id::int, email, first_name, phone, status, email_opt_out from app.customers where id = any ($1) order by id`,
      [erasedIds],
    )
  ).rows,
  other: (
    await db.query(`select id::int, email from app.customers where id in ($1, $2) and email like $3 order by id`, [
      ids.other,
      ids.otherNew,
      `%${ids.tag}%`,
    ])
  ).rows,
});
const scrubbedCustomer = (id: number) => ({
  id,
  email: null,
  first_name: null,
  phone: null,
  status: 'DEACTIVATED',
  email_opt_out: true,
});

const eventsState = async (ids: Ids) => ({
  erased: Number((await one<{ n: string }>(`select count(*) as n from app.events where customer_id = $1`, [ERASED])).n),
  other: (
    await db.query(
      `select customer_id::int, payload ->> 'email' as email from app.events where kind = $1 order by customer_id`,
      [ids.tag],
    )
  ).rows,
});

const ordersState = async (ids: Ids) => ({
  // The erased subject's orders holding any PII: never any.
  pii: (
    await db.query(
      `select id::int from app.orders where customer_id = $1 and (shipping_name is not null or shipping_address is not null)`,
      [ERASED],
    )
  ).rows,
  kept: (await db.query(`select id::int from app.orders where id in (11, 12) order by id`)).rows,
  added: (
    await db.query(`select id::int, shipping_name, shipping_address from app.orders where id = $1`, [newOrderId(ids)])
  ).rows,
  other: (
    await db.query(
      `select id::int, shipping_name from app.orders where customer_id = $1 and shipping_name = $2 order by id`,
      [ids.other, ids.tag],
    )
  ).rows,
});
const erasedOrders = (mode: Mode, added: boolean, ids: Ids) => ({
  pii: [],
  kept: [{ id: 11 }, { id: 12 }],
  added: added && mode === 'scrub' ? [{ id: newOrderId(ids), shipping_name: null, shipping_address: null }] : [],
});

const itemsState = async (ids: Ids) => ({
  pii: (
    await db.query(
      `select i.id::int from app.order_items i join app.orders o on o.id = i.order_id where o.customer_id = $1 and i.gift_message is not null`,
      [ERASED],
    )
  ).rows,
  kept: (await db.query(`select id::int from app.order_items where id in (111, 112, 121, 122) order by id`)).rows,
  added: (await db.query(`select id::int, gift_message from app.order_items where id = $1`, [newItemId(ids)])).rows,
  other: (
    await db.query(
      `select i.id::int, i.gift_message from app.order_items i join app.orders o on o.id = i.order_id where o.customer_id = $1 and i.gift_message = $2 order by i.id`,
      [ids.other, ids.tag],
    )
  ).rows,
});
const erasedItems = (mode: Mode, added: boolean, ids: Ids) => ({
  pii: [],
  kept: [{ id: 111 }, { id: 112 }, { id: 121 }, { id: 122 }],
  added: added && mode === 'scrub' ? [{ id: newItemId(ids), gift_message: null }] : [],
});

const newOrderId = (ids: Ids) => 900_000 + ids.n;
const newItemId = (ids: Ids) => 900_000 + ids.n;
const otherOrder = (ids: Ids) => ids.other * 10 + 1;

const scenarios: Record<Table, Record<Op, Scenario>> = {
  customers: {
    insert: {
      run: (ids) =>
        db.query(
          `insert into app.customers (id, email, first_name, phone) values ($1, $3, 'Back', '+44 7700 900999'), ($2, $4, 'New', '+44 7700 900998')`,
          [ids.fresh, ids.otherNew, `user${ids.fresh}@example.com`, `new-${ids.tag}@example.com`],
        ),
      state: (ids) => customersState(ids, [ids.fresh]),
      expected: (mode, ids) => ({
        erased: mode === 'scrub' ? [scrubbedCustomer(ids.fresh)] : [],
        other: mode === 'reject' ? [] : [{ id: ids.otherNew, email: `new-${ids.tag}@example.com` }],
      }),
    },
    update: {
      run: (ids) =>
        db.query(
          `update app.customers set email = 'other-' || $3 || '@example.com', first_name = 'Back', phone = '+44 1' where id in ($1, $2)`,
          [ERASED, ids.other, ids.tag],
        ),
      state: (ids) => customersState(ids, [ERASED]),
      expected: (mode, ids) => ({
        erased: [scrubbedCustomer(ERASED)],
        other: mode === 'reject' ? [] : [{ id: ids.other, email: `other-${ids.tag}@example.com` }],
      }),
    },
    upsert: {
      // ERASED conflicts (update path), fresh and otherNew are new (insert path), other conflicts.
      run: (ids) =>
        db.query(
          `insert into app.customers (id, email, first_name) values ($1, 'back@example.com', 'Back'), ($2, 'back2@example.com', 'Back'),
                  ($3, 'other-' || $5 || '@example.com', 'O'), ($4, 'new-' || $5 || '@example.com', 'N')
           on conflict (id) do update set email = excluded.email, first_name = excluded.first_name`,
          [ERASED, ids.fresh, ids.other, ids.otherNew, ids.tag],
        ),
      state: (ids) => customersState(ids, [ERASED, ids.fresh]),
      expected: (mode, ids) => ({
        erased: mode === 'scrub' ? [scrubbedCustomer(ERASED), scrubbedCustomer(ids.fresh)] : [scrubbedCustomer(ERASED)],
        other:
          mode === 'reject'
            ? []
            : [
                { id: ids.other, email: `other-${ids.tag}@example.com` },
                { id: ids.otherNew, email: `new-${ids.tag}@example.com` },
              ],
      }),
    },
    copy: {
      run: (ids) =>
        copyIn('copy app.customers (id, email, first_name, phone) from stdin', [
          `${ids.fresh}\tuser${ids.fresh}@example.com\tBack\t+44 7700 900999`,
          `${ids.otherNew}\tnew-${ids.tag}@example.com\tNew\t+44 7700 900998`,
        ]),
      state: (ids) => customersState(ids, [ids.fresh]),
      expected: (mode, ids) => ({
        erased: mode === 'scrub' ? [scrubbedCustomer(ids.fresh)] : [],
        other: mode === 'reject' ? [] : [{ id: ids.otherNew, email: `new-${ids.tag}@example.com` }],
      }),
    },
  },
  events: {
    insert: {
      run: (ids) =>
        db.query(
          `insert into app.events (customer_id, occurred_at, kind, payload)
           values ($1, '2026-09-20', $3, '{"email": "user1@example.com"}'), ($1, '2026-11-20', $3, '{"email": "user1@example.com"}'),
                  ($2, '2026-10-20', $3, jsonb_build_object('email', 'other-' || $3))`,
          [ERASED, ids.other, ids.tag],
        ),
      state: eventsState,
      expected: (mode, ids) => ({
        erased: 0,
        other: mode === 'reject' ? [] : [{ customer_id: ids.other, email: `other-${ids.tag}` }],
      }),
    },
    update: {
      // Re-attributes one of the other subject's events (with an email inside) to the erased subject.
      run: async (ids) => {
        const { rows } = await db.query(`select id from app.events where customer_id = $1 order by id limit 2`, [
          ids.other,
        ]);
        return db.query(
          `update app.events set kind = $3, payload = payload || jsonb_build_object('email', 'other-' || $3),
                  customer_id = case when id = $1 then ${ERASED} else customer_id end
           where id in ($1, $2)`,
          [rows[0].id, rows[1].id, ids.tag],
        );
      },
      state: eventsState,
      expected: (mode, ids) => ({
        erased: 0,
        other: mode === 'reject' ? [] : [{ customer_id: ids.other, email: `other-${ids.tag}` }],
      }),
    },
    upsert: {
      // A new event of the erased subject (insert path), one of the other subject's events moved to the
      // erased subject (update path), and another of the other subject's events updated in place.
      run: async (ids) => {
        const { rows } = await db.query(
          `select id, occurred_at from app.events where customer_id = $1 order by id limit 2`,
          [ids.other],
        );
        return db.query(
          `insert into app.events (id, customer_id, occurred_at, kind, payload) overriding system value
           values ($1, ${ERASED}, '2026-10-02', $6, '{"email": "user1@example.com"}'),
                  ($2, ${ERASED}, $3, $6, '{"email": "user1@example.com"}'),
                  ($4, $7, $5, $6, jsonb_build_object('email', 'other-' || $6))
           on conflict (id, occurred_at) do update set kind = excluded.kind, payload = excluded.payload, customer_id = excluded.customer_id`,
          [1_000_000 + ids.n, rows[0].id, rows[0].occurred_at, rows[1].id, rows[1].occurred_at, ids.tag, ids.other],
        );
      },
      state: eventsState,
      expected: (mode, ids) => ({
        erased: 0,
        other: mode === 'reject' ? [] : [{ customer_id: ids.other, email: `other-${ids.tag}` }],
      }),
    },
    copy: {
      run: (ids) =>
        copyIn('copy app.events (customer_id, occurred_at, kind, payload) from stdin', [
          `${ERASED}\t2026-09-21\t${ids.tag}\t{"email": "user1@example.com"}`,
          `${ERASED}\t2026-10-21\t${ids.tag}\t{"email": "user1@example.com"}`,
          `${ids.other}\t2026-10-21\t${ids.tag}\t{"email": "other-${ids.tag}"}`,
        ]),
      state: eventsState,
      expected: (mode, ids) => ({
        erased: 0,
        other: mode === 'reject' ? [] : [{ customer_id: ids.other, email: `other-${ids.tag}` }],
      }),
    },
  },
  orders: {
    insert: {
      run: (ids) =>
        db.query(
          `insert into app.orders (id, customer_id, total, shipping_name, shipping_address) values ($1, ${ERASED}, 5, 'First1 Last1', '1 High Street'), ($2, $3, 5, $4, 'Elm Road')`,
          [newOrderId(ids), newOrderId(ids) + 50_000, ids.other, ids.tag],
        ),
      state: ordersState,
      expected: (mode, ids) => ({
        ...erasedOrders(mode, true, ids),
        other: mode === 'reject' ? [] : [{ id: newOrderId(ids) + 50_000, shipping_name: ids.tag }],
      }),
    },
    update: {
      run: (ids) =>
        db.query(
          `update app.orders set shipping_name = $2, shipping_address = 'Back Lane' where customer_id in (${ERASED}, $1)`,
          [ids.other, ids.tag],
        ),
      state: ordersState,
      expected: (mode, ids) => ({
        ...erasedOrders(mode, false, ids),
        other:
          mode === 'reject'
            ? []
            : [
                { id: ids.other * 10 + 1, shipping_name: ids.tag },
                { id: ids.other * 10 + 2, shipping_name: ids.tag },
              ],
      }),
    },
    upsert: {
      run: (ids) =>
        db.query(
          `insert into app.orders (id, customer_id, total, shipping_name, shipping_address)
           values (11, ${ERASED}, 10, 'First1 Last1', '1 High Street'), ($1, ${ERASED}, 5, 'First1 Last1', '1 High Street'), ($2, $3, 10, $4, 'Elm Road')
           on conflict (id) do update set shipping_name = excluded.shipping_name, shipping_address = excluded.shipping_address`,
          [newOrderId(ids), otherOrder(ids), ids.other, ids.tag],
        ),
      state: ordersState,
      expected: (mode, ids) => ({
        ...erasedOrders(mode, true, ids),
        other: mode === 'reject' ? [] : [{ id: otherOrder(ids), shipping_name: ids.tag }],
      }),
    },
    copy: {
      run: (ids) =>
        copyIn('copy app.orders (id, customer_id, total, shipping_name, shipping_address) from stdin', [
          `${newOrderId(ids)}\t${ERASED}\t5\tFirst1 Last1\t1 High Street`,
          `${newOrderId(ids) + 50_000}\t${ids.other}\t5\t${ids.tag}\tElm Road`,
        ]),
      state: ordersState,
      expected: (mode, ids) => ({
        ...erasedOrders(mode, true, ids),
        other: mode === 'reject' ? [] : [{ id: newOrderId(ids) + 50_000, shipping_name: ids.tag }],
      }),
    },
  },
  order_items: {
    insert: {
      run: (ids) =>
        db.query(
          `insert into app.order_items (id, order_id, sku, quantity, gift_message) values ($1, 11, 'SKU-9', 1, 'for First1 Last1'), ($2, $3, 'SKU-9', 1, $4)`,
          [newItemId(ids), newItemId(ids) + 50_000, otherOrder(ids), ids.tag],
        ),
      state: itemsState,
      expected: (mode, ids) => ({
        ...erasedItems(mode, true, ids),
        other: mode === 'reject' ? [] : [{ id: newItemId(ids) + 50_000, gift_message: ids.tag }],
      }),
    },
    update: {
      run: (ids) =>
        db.query(`update app.order_items set gift_message = $2 where order_id in (11, 12, $1)`, [
          otherOrder(ids),
          ids.tag,
        ]),
      state: itemsState,
      expected: (mode, ids) => ({
        ...erasedItems(mode, false, ids),
        other:
          mode === 'reject'
            ? []
            : [
                { id: otherOrder(ids) * 10 + 1, gift_message: ids.tag },
                { id: otherOrder(ids) * 10 + 2, gift_message: ids.tag },
              ],
      }),
    },
    upsert: {
      run: (ids) =>
        db.query(
          `insert into app.order_items (id, order_id, sku, quantity, gift_message)
           values (111, 11, 'SKU-1', 1, 'for First1 Last1'), ($1, 12, 'SKU-9', 1, 'for First1 Last1'), ($2, $3, 'SKU-1', 1, $4)
           on conflict (id) do update set gift_message = excluded.gift_message`,
          [newItemId(ids), otherOrder(ids) * 10 + 1, otherOrder(ids), ids.tag],
        ),
      state: itemsState,
      expected: (mode, ids) => ({
        ...erasedItems(mode, true, ids),
        other: mode === 'reject' ? [] : [{ id: otherOrder(ids) * 10 + 1, gift_message: ids.tag }],
      }),
    },
    copy: {
      run: (ids) =>
        copyIn('copy app.order_items (id, order_id, sku, quantity, gift_message) from stdin', [
          `${newItemId(ids)}\t12\tSKU-9\t1\tfor First1 Last1`,
          `${newItemId(ids) + 50_000}\t${otherOrder(ids)}\tSKU-9\t1\t${ids.tag}`,
        ]),
      state: itemsState,
      expected: (mode, ids) => ({
        ...erasedItems(mode, true, ids),
        other: mode === 'reject' ? [] : [{ id: newItemId(ids) + 50_000, gift_message: ids.tag }],
      }),
    },
  },
};

let counter = 0;
function nextIds(): Ids {
  const n = counter++;
  return {
    n,
    fresh: FRESH_ERASED[n]!,
    other: 21 + n,
    otherNew: 5000 + n,
    tag: `t${n}-${Math.random().toString(36).slice(2, 8)}`,
  };
}

async function guardAudit(table: string) {
  const { rows } = await db.query(
    `select action, details ->> 'operation' as op from pii.audit where action like 'guard\\_%' and details ->> 'table' = $1 order by id desc limit 1`,
    [`app.${table}`],
  );
  return rows[0];
}

describe.each(['scrub', 'reject', 'skip'] as const)('guard mode %s', (mode) => {
  describe.each(['customers', 'events', 'orders', 'order_items'] as const)('app.%s', (table) => {
    it.each(['insert', 'update', 'upsert', 'copy'] as const)('%s of an erased subject restores no PII', async (op) => {
      await db.query('select pii.set_guard($1, $2)', [`app.${table}`, mode]);
      const scenario = scenarios[table][op];
      const ids = nextIds();
      const auditBefore = Number((await one<{ n: string }>(`select count(*) as n from pii.audit`)).n);

      if (mode === 'reject') {
        await expectPgError(
          scenario.run(ids),
          'PII01',
          new RegExp(`erased subject\\(s\\) cannot be re-ingested into app\\.${table}`),
        );
        expect(Number((await one<{ n: string }>(`select count(*) as n from pii.audit`)).n)).toBe(auditBefore);
      } else {
        await scenario.run(ids);
        expect(await guardAudit(table)).toEqual({
          action: `guard_${mode}`,
          op: op === 'copy' ? 'insert' : op === 'upsert' ? expect.stringMatching(/insert|update/) : op,
        });
      }
      expect(await scenario.state(ids)).toEqual(scenario.expected(mode, ids));
      // The request that erased them still verifies: nothing came back anywhere.
      expect((await db.query('select * from pii.verify_erasure($1)', [requestId])).rows).toEqual([]);
    });
  });
});

describe('guards', () => {
  it('are installed on every registered table and its partitions at registration (statement triggers on insert and update)', async () => {
    const { rows } = await db.query(
      `select tgrelid::regclass::text as t, string_agg(tgname, ',' order by tgname) as names
       from pg_trigger where tgname like 'lethe\\_guard\\_%' group by 1 order by 1`,
    );
    expect(rows).toEqual(
      [
        'app.customers',
        'app.engravings',
        'app.events',
        'app.events_2026_09',
        'app.events_2026_10',
        'app.events_default',
        'app.loyalty_points',
        'app.order_items',
        'app.orders',
      ].map((t) => ({
        t,
        names: 'lethe_guard_insert,lethe_guard_update',
      })),
    );
  });

  it('reach a grandchild through two parents (engravings -> order_items -> orders)', async () => {
    await db.query(`select pii.set_guard('app.engravings', 'scrub')`);
    await db.query(
      `insert into app.engravings (id, order_item_id, engraving) values (990001, 112, 'To First1'), (990002, 211, 'To Other')`,
    );
    const { rows } = await db.query(
      `select id::int, engraving from app.engravings where id in (990001, 990002) order by id`,
    );
    expect(rows).toEqual([
      { id: 990001, engraving: '' },
      { id: 990002, engraving: 'To Other' },
    ]);
    await db.query(`select pii.set_guard('app.engravings', 'reject')`);
    await expectPgError(
      db.query(`update app.engravings set engraving = 'To First1' where id = 990001`),
      'PII01',
      /app\.engravings \(update blocked\)/,
    );
  });

  it('accept an UPDATE that brings no PII back, even in reject mode', async () => {
    for (const t of ['customers', 'orders', 'order_items'])
      await db.query('select pii.set_guard($1, $2)', [`app.${t}`, 'reject']);
    await db.query(`update app.customers set created_at = '2026-06-01' where id = ${ERASED}`);
    await db.query(`update app.orders set total = 99 where customer_id = ${ERASED}`);
    await db.query(`update app.order_items set quantity = 7 where order_id = 11`);
    expect(await one(`select created_at, email, status from app.customers where id = ${ERASED}`)).toEqual({
      created_at: new Date('2026-06-01T00:00:00Z'),
      email: null,
      status: 'DEACTIVATED',
    });
    expect(
      await one(
        `select count(*)::int as n from app.orders where id in (11, 12) and total = 99 and shipping_name is null`,
      ),
    ).toEqual({ n: 2 });
    expect(
      await one(
        `select count(*)::int as n from app.order_items where id in (111, 112) and quantity = 7 and gift_message is null`,
      ),
    ).toEqual({ n: 2 });
    // A new order without PII for the erased subject is accepted too.
    await db.query(`insert into app.orders (id, customer_id, total) values (990100, ${ERASED}, 1)`);
    expect(await one(`select count(*)::int as n from app.orders where id = 990100`)).toEqual({ n: 1 });
  });

  it('pii.allow_return lifts the guard for one person (audited with the hash only) and returns false when there was no tombstone', async () => {
    // Erased on their own, not by the request the other tests verify.
    const back = 8001;
    await db.query(`select * from pii.erase_subjects(array['8001', '8002'])`);
    await db.query(`select pii.set_guard('app.customers', 'reject')`);
    await expectPgError(
      db.query(`insert into app.customers (id, email) values ($1, 'back@example.com')`, [back]),
      'PII01',
      /cannot be re-ingested/,
    );

    expect(await one(`select pii.allow_return($1) as r`, [String(back)])).toEqual({ r: true });
    await db.query(`insert into app.customers (id, email) values ($1, 'back@example.com')`, [back]);
    expect(await one(`select email, status from app.customers where id = $1`, [back])).toEqual({
      email: 'back@example.com',
      status: 'ACTIVE',
    });
    expect(await one(`select erased, flagged_at from pii.was_erased($1)`, [String(back)])).toEqual({
      erased: false,
      flagged_at: null,
    });

    const audit = await one<{ action: string; subject_hash: Buffer; details: unknown; raw: boolean }>(
      `select action, subject_hash, details, strpos(a::text, $1) > 0 as raw from pii.audit a where action = 'allow_return' order by id desc limit 1`,
      [String(back)],
    );
    expect(audit).toMatchObject({ action: 'allow_return', details: {}, raw: false });
    expect(audit.subject_hash).toHaveLength(32);
    expect(await one(`select pii.allow_return('424242') as r`)).toEqual({ r: false });
    // Everyone else stays guarded.
    await expectPgError(
      db.query(`insert into app.customers (id, email) values (8002, 'x@example.com')`),
      'PII01',
      /cannot be re-ingested/,
    );
  });

  it('mode off removes the triggers (PII can come back) and another mode puts them back', async () => {
    await db.query(`select pii.set_guard('app.orders', 'off')`);
    expect(
      await one(
        `select count(*)::int as n from pg_trigger where tgrelid = 'app.orders'::regclass and tgname like 'lethe%'`,
      ),
    ).toEqual({ n: 0 });
    expect(await one(`select guard_mode from pii.registered_tables where table_name = 'app.orders'`)).toEqual({
      guard_mode: 'off',
    });
    await db.query(
      `insert into app.orders (id, customer_id, total, shipping_name) values (990200, ${ERASED}, 1, 'First1 Last1')`,
    );
    expect(await one(`select shipping_name from app.orders where id = 990200`)).toEqual({
      shipping_name: 'First1 Last1',
    });
    // verify_erasure sees it.
    const { rows } = await db.query(`select table_name, column_name, detail from pii.verify_erasure($1)`, [requestId]);
    expect(rows).toEqual([
      { table_name: 'app.orders', column_name: 'shipping_name', detail: 'not erased (erase strategy null)' },
    ]);
    await db.query(`delete from app.orders where id = 990200`);

    await db.query(`select pii.set_guard('app.orders', 'scrub')`);
    expect(
      await one(
        `select count(*)::int as n from pg_trigger where tgrelid = 'app.orders'::regclass and tgname like 'lethe%'`,
      ),
    ).toEqual({ n: 2 });
    expect(
      await one(`select action, details from pii.audit where action = 'set_guard' order by id desc limit 1`),
    ).toEqual({
      action: 'set_guard',
      details: { table: 'app.orders', mode: 'scrub' },
    });
  });

  it('set_guard refuses an unknown mode (22023) and an unregistered table (55000)', async () => {
    await expectPgError(
      db.query(`select pii.set_guard('app.orders', 'ignore')`),
      '22023',
      /guard mode must be scrub, reject, skip or off, not "ignore"/,
    );
    await expectPgError(
      db.query(`select pii.set_guard('app.daily_revenue', 'reject')`),
      '55000',
      /table app\.daily_revenue is not registered/,
    );
  });

  it('cost nothing and change nothing for subjects that were never erased', async () => {
    await db.query(`select pii.set_guard('app.customers', 'reject')`);
    await db.query(
      `insert into app.customers (id, email) select g, 'bulk' || g || '@example.com' from generate_series(700000, 700999) g`,
    );
    expect(
      await one(
        `select count(*)::int as n from app.customers where id between 700000 and 700999 and email like 'bulk%'`,
      ),
    ).toEqual({ n: 1000 });
  });

  it('send the deputy only the columns they read; a column of a domain that refuses NULL arrives as written', async () => {
    // The guard sends unread columns of built-in types (a payload) as NULL; a domain column
    // must arrive as it is, or reading the rows back as the table's type fails (23502).
    await db.query(`create domain app.ticket_code as text not null check (value like 'T-%')`);
    await db.query(`create table app.tickets (id bigint primary key, customer_id bigint not null references app.customers (id),
                      code app.ticket_code, body jsonb, subject text)`);
    await db.query(`create index on app.tickets (customer_id)`);
    await db.query(`select pii.register_table('app.tickets', 'customer_id', 'anonymize')`);
    await db.query(`select pii.register_column('app.tickets', 'subject', 'null', 'hide', 'free_text')`);
    await db.query(
      `insert into app.tickets values (1, ${ERASED}, 'T-1', '{"note": "call back"}', 'Refund for First1'),
                                      (2, 2, 'T-2', '{"note": "fine"}', 'Where is my parcel')`,
    );
    expect((await db.query(`select id::int, code, body, subject from app.tickets order by id`)).rows).toEqual([
      { id: 1, code: 'T-1', body: { note: 'call back' }, subject: null },
      { id: 2, code: 'T-2', body: { note: 'fine' }, subject: 'Where is my parcel' },
    ]);
    await db.query(`select pii.set_guard('app.tickets', 'skip')`);
    await db.query(
      `insert into app.tickets values (3, ${ERASED}, 'T-3', null, 'Again'), (4, 2, 'T-4', null, 'Thanks')`,
    );
    expect((await db.query(`select id::int from app.tickets order by id`)).rows).toEqual([
      { id: 1 },
      { id: 2 },
      { id: 4 },
    ]);
    await db.query(`select pii.unregister_table('app.tickets')`);
    await db.query(`drop table app.tickets; drop domain app.ticket_code`);
  });

  it('narrow a bulk write by tombstone buckets, and hash every key while a tombstone has no bucket', async () => {
    // 1,500 distinct subjects in one statement: the guard hashes only keys whose bucket a
    // tombstone has. Erased by a request (ERASED, FRESH_ERASED) and directly (8101).
    await db.query(`select * from pii.erase_subjects(array['8101'])`);
    await db.query(`select pii.set_guard('app.events', 'scrub')`);
    const erased = [ERASED, ...FRESH_ERASED, 8101];
    const bulkInsert = (tag: string) =>
      db.query(
        `insert into app.events (customer_id, occurred_at, kind, payload)
         select g, '2026-09-15', $1, '{}' from (select generate_series(1, 1499) union all select 8101) as s (g)`,
        [tag],
      );
    const left = async (tag: string) =>
      (
        await db.query(
          `select count(*)::int as n, count(*) filter (where customer_id = any ($2))::int as erased from app.events where kind = $1`,
          [tag, erased],
        )
      ).rows[0];
    expect(
      (await db.query(`select count(*)::int as n from pii_internal.tombstones where bucket is null`)).rows[0],
    ).toEqual({ n: 0 });
    await bulkInsert('bulk-bucketed');
    expect(await left('bulk-bucketed')).toEqual({ n: 1500 - erased.length, erased: 0 });
    // A tombstone without a bucket (written before buckets existed, or restored from the
    // ledger): the guard cannot narrow by buckets, and still finds that subject.
    await db.query(
      `update pii_internal.tombstones set bucket = null where subject_hash = pii_internal.subject_hash(null, $1)`,
      [String(ERASED)],
    );
    await bulkInsert('bulk-unbucketed');
    expect(await left('bulk-unbucketed')).toEqual({ n: 1500 - erased.length, erased: 0 });
  });

  it('guard writes that name a partition directly', async () => {
    await db.query(`select pii.set_guard('app.events', 'reject')`);
    await expectPgError(
      // An explicit id: before PostgreSQL 17 a partition does not inherit its parent's identity (17 needs OVERRIDING).
      db.query(
        `insert into app.events_2026_09 (id, customer_id, occurred_at, kind, payload) overriding system value values (990001, ${ERASED}, '2026-09-20', 'direct', '{"email": "user1@example.com"}')`,
      ),
      'PII01',
      /cannot be re-ingested/,
    );
  });
});
