// Identifiers outlive the row (issue 12): an erased person written again under a NEW key
// (a new serial id, as a nightly sync re-creating the contact does) is caught by any
// registered identifier (customer email and phone, staff email and username, a payment's
// receipt email), normalised as declared, in every guard mode and every statement kind
// (INSERT, UPDATE, upsert, COPY, a partition named directly). Each scenario runs in a
// transaction that is rolled back.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

type Mode = 'scrub' | 'reject' | 'skip';
type Op = 'insert' | 'update' | 'upsert' | 'copy' | 'partition';

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('identifier_guards');
  await loadFixture(db, 'rentalShop.sql', 'rentalShop_kinds.sql');
  await db.query(`select * from pii.erase_subjects(array['3'], kind => 'customer')`);
  await db.query(`select * from pii.erase_subjects(array['3'], kind => 'staff')`);
});
afterAll(() => db?.drop());

/** A table holding an identifier, how to write a row to it, and what a scrubbed row looks like. */
interface Spec {
  identifier: string;
  table: string;
  sequence: string;
  key: string;
  columns: string[];
  /** A row with a new key; the identifier column holds `value`. */
  row: (id: number, value: string) => unknown[];
  identifierColumn: string;
  /** The erased person's value, written differently (the normaliser makes it theirs). */
  erasedValue: string;
  neutralValue: (id: number) => string;
  scrubbed: Record<string, unknown>;
  partition?: string;
}

const customer = (identifierColumn: 'email' | 'phone', erasedValue: string): Spec => ({
  identifier: `customer.${identifierColumn}`,
  table: 'shop.customer',
  sequence: 'shop.customer_customer_id_seq',
  key: 'customer_id',
  columns: ['customer_id', 'store_id', 'first_name', 'last_name', 'email', 'phone', 'address_id'],
  row: (id, value) => [
    id,
    1,
    'New',
    'Person',
    identifierColumn === 'email' ? value : `new${id}@mail.example`,
    identifierColumn === 'phone' ? value : `+1 555 900 ${id}`,
    4,
  ],
  identifierColumn,
  erasedValue,
  neutralValue: (id) => (identifierColumn === 'email' ? `fresh${id}@mail.example` : `+1 555 800 ${id}`),
  scrubbed: { first_name: 'erased', last_name: 'erased', email: null, phone: null },
});

const staff = (identifierColumn: 'email' | 'username', erasedValue: string): Spec => ({
  identifier: `staff.${identifierColumn}`,
  table: 'shop.staff',
  sequence: 'shop.staff_staff_id_seq',
  key: 'staff_id',
  columns: ['staff_id', 'first_name', 'last_name', 'email', 'username', 'address_id', 'store_id'],
  row: (id, value) => [
    id,
    'New',
    'Staff',
    identifierColumn === 'email' ? value : `new${id}@staff.example`,
    identifierColumn === 'username' ? value : `new${id}`,
    41,
    1,
  ],
  identifierColumn,
  erasedValue,
  neutralValue: (id) => (identifierColumn === 'email' ? `fresh${id}@staff.example` : `fresh${id}`),
  scrubbed: { first_name: 'erased', last_name: 'erased', email: null, username: expect.stringMatching(/^anon_/) },
});

const payment: Spec = {
  identifier: 'payment.receipt_email',
  table: 'shop.payment',
  sequence: 'shop.payment_payment_id_seq',
  key: 'payment_id',
  // Another customer's payment (customer 10, never erased) with the erased person's email.
  columns: ['payment_id', 'customer_id', 'staff_id', 'amount', 'payment_date', 'receipt_email'],
  row: (id, value) => [id, 10, 1, '9.99', '2026-02-10 10:00:00+00', value],
  identifierColumn: 'receipt_email',
  erasedValue: 'CUSTOMER3@mail.example ',
  neutralValue: (id) => `receipt${id}@mail.example`,
  scrubbed: { receipt_email: null },
  partition: 'shop.payment_2026_02',
};

const SPECS: Spec[] = [
  customer('email', ' Customer3@MAIL.example '),
  customer('phone', '1-555-200-0003'),
  staff('email', 'ANA@staff.example'),
  staff('username', ' Ana '),
  payment,
];
const MODES: Mode[] = ['scrub', 'reject', 'skip'];
const opsOf = (spec: Spec): Op[] => [
  'insert',
  'update',
  'upsert',
  'copy',
  ...(spec.partition ? ['partition' as Op] : []),
];

const placeholders = (n: number, from = 1) => Array.from({ length: n }, (_, i) => `$${i + from}`).join(', ');

/** Writes the erased identifier under a new key with one statement of the given kind. */
async function write(client: pg.PoolClient, spec: Spec, op: Op, id: number, otherId: number): Promise<void> {
  const cols = spec.columns.join(', ');
  const n = spec.columns.length;
  const erasedRow = spec.row(id, spec.erasedValue);
  const otherRow = spec.row(otherId, spec.neutralValue(otherId));
  if (op === 'insert' || op === 'partition') {
    const target = op === 'partition' ? spec.partition! : spec.table;
    await client.query(`insert into ${target} (${cols}) values (${placeholders(n)}), (${placeholders(n, n + 1)})`, [
      ...erasedRow,
      ...otherRow,
    ]);
  } else if (op === 'copy') {
    const lines = [erasedRow, otherRow].map((r) => `${r.join('\t')}\n`);
    await pipeline(Readable.from(lines), client.query(copyFrom(`copy ${spec.table} (${cols}) from stdin`)));
  } else {
    // The row arrives clean first (the guard lets it in), then the identifier arrives.
    await client.query(`insert into ${spec.table} (${cols}) values (${placeholders(n)}), (${placeholders(n, n + 1)})`, [
      ...spec.row(id, spec.neutralValue(id)),
      ...otherRow,
    ]);
    if (op === 'update') {
      await client.query(`update ${spec.table} set ${spec.identifierColumn} = $1 where ${spec.key} = $2`, [
        spec.erasedValue,
        id,
      ]);
    } else {
      const conflict = spec.table === 'shop.payment' ? 'payment_id, payment_date' : spec.key;
      await client.query(
        `insert into ${spec.table} (${cols}) values (${placeholders(n)})
         on conflict (${conflict}) do update set ${spec.identifierColumn} = excluded.${spec.identifierColumn}`,
        erasedRow,
      );
    }
  }
}

describe('guards catch an erased person under a new key by an identifier', () => {
  for (const spec of SPECS) {
    for (const mode of MODES) {
      for (const op of opsOf(spec)) {
        it(`${spec.identifier}, ${mode}, ${op}`, async () => {
          const client = await db.pool.connect();
          try {
            await client.query('begin');
            const ids = (await client.query(`select nextval($1) as a, nextval($1) as b`, [spec.sequence])).rows[0];
            const id = Number(ids.a);
            const otherId = Number(ids.b);
            await client.query(`select pii.set_guard($1, $2)`, [spec.table, mode]);
            const before10 =
              spec === payment
                ? (
                    await client.query(
                      `select payment_id, receipt_email from shop.payment where customer_id = 10 order by 1`,
                    )
                  ).rows
                : [];
            const outcome = await write(client, spec, op, id, otherId).then(
              () => null,
              (e: { code?: string }) => e.code ?? 'error',
            );
            if (mode === 'reject') {
              expect(outcome).toBe('PII01');
              return;
            }
            expect(outcome).toBeNull();
            const select = `select * from ${spec.table} where ${spec.key} = $1`;
            const rows = (await client.query(select, [id])).rows;
            if (mode === 'skip' && (op === 'insert' || op === 'copy' || op === 'partition')) {
              expect(rows).toEqual([]);
            } else {
              expect(rows).toHaveLength(1);
              expect(rows[0]).toMatchObject(spec.scrubbed);
            }
            // The other row of the same statement is written as sent.
            const other = (await client.query(select, [otherId])).rows;
            expect(other).toHaveLength(1);
            expect(other[0][spec.identifierColumn]).toBe(spec.neutralValue(otherId));
            if (spec === payment) {
              // Only the row carrying the identifier: customer 10's own payments are untouched.
              expect(
                (
                  await client.query(
                    `select payment_id, receipt_email from shop.payment where customer_id = 10 and payment_id not in ($1, $2) order by 1`,
                    [id, otherId],
                  )
                ).rows,
              ).toEqual(before10);
            }
          } finally {
            await client.query('rollback');
            client.release();
          }
        });
      }
    }
  }

  it('a new key caught on the subject table is tombstoned: its later child rows are guarded by key', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const id = Number((await client.query(`select nextval('shop.customer_customer_id_seq') as n`)).rows[0].n);
      await client.query(
        `insert into shop.customer (customer_id, store_id, first_name, last_name, email, address_id)
         values ($1, 1, 'Back', 'Again', 'customer3@mail.example', 4)`,
        [id],
      );
      expect(
        (
          await client.query(`select flagged_at is not null as flagged from pii.was_erased($1, kind => 'customer')`, [
            String(id),
          ])
        ).rows,
      ).toEqual([{ flagged: true }]);
      await client.query(
        `insert into shop.rental (rental_date, customer_id, staff_id, note) values (now(), $1, 1, 'call Ann')`,
        [id],
      );
      expect((await client.query(`select note from shop.rental where customer_id = $1`, [id])).rows).toEqual([
        { note: null },
      ]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it("an identifier of another kind does not count: a customer with an erased staff member's email is written", async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const id = Number((await client.query(`select nextval('shop.customer_customer_id_seq') as n`)).rows[0].n);
      await client.query(
        `insert into shop.customer (customer_id, store_id, first_name, last_name, email, address_id) values ($1, 1, 'Ana', 'Lopez', 'ana@staff.example', 4)`,
        [id],
      );
      expect(
        (await client.query(`select first_name, email from shop.customer where customer_id = $1`, [id])).rows,
      ).toEqual([{ first_name: 'Ana', email: 'ana@staff.example' }]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });
});

describe('pii.allow_return_identifier', () => {
  it('lets exactly that person back: their email passes, their phone and other erased people do not', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select * from pii.erase_subjects(array['5'], kind => 'customer')`);
      expect(
        (
          await client.query(
            `select pii.allow_return_identifier('email', ' CUSTOMER3@mail.example', kind => 'customer') as n`,
          )
        ).rows,
      ).toEqual([{ n: '1' }]);
      const ids = (
        await client.query(`select nextval('shop.customer_customer_id_seq') as n from generate_series(1, 3)`)
      ).rows.map((r) => Number(r.n));
      await client.query(
        `insert into shop.customer (customer_id, store_id, first_name, last_name, email, phone, address_id)
         values ($1, 1, 'Back', 'Three', 'customer3@mail.example', '+1 555 777 0001', 4),
                ($2, 1, 'Back', 'Phone', 'other3@mail.example', '+1 (555) 200-0003', 4),
                ($3, 1, 'Back', 'Five', 'customer5@mail.example', '+1 555 777 0005', 4)`,
        ids,
      );
      const { rows } = await client.query(
        `select customer_id, first_name, email from shop.customer where customer_id = any ($1::int[]) order by 1`,
        [ids],
      );
      expect(rows).toEqual([
        { customer_id: ids[0], first_name: 'Back', email: 'customer3@mail.example' },
        { customer_id: ids[1], first_name: 'erased', email: null },
        { customer_id: ids[2], first_name: 'erased', email: null },
      ]);
      expect(
        (await client.query(`select details from pii.audit where action = 'allow_return_identifier'`)).rows,
      ).toEqual([{ details: { kind: 'customer', identifier: 'email', tombstones: 1 } }]);
    } finally {
      await client.query('rollback');
      client.release();
    }
  });

  it('refuses an identifier the kind does not have (22023)', async () => {
    await expect(
      db.query(`select pii.allow_return_identifier('username', 'x', kind => 'customer')`),
    ).rejects.toMatchObject({
      code: '22023',
      message: expect.stringMatching(/no identifier "username" is registered for kind "customer"/),
    });
  });
});
