// pii.audit: append-only (even for the superuser that owns it), written by every
// registry change, erasure, request step, guard action and allow_return, and free of
// subject keys and PII values.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
let requestId: string;

/** Runs a request to the end as the worker would, on a connection with an application_name. */
async function runRequest(client: pg.Client, keys: string[]): Promise<string> {
  const { rows } = await client.query('select pii.request_erasure($1::text[], request_key => $2) as id', [
    keys,
    `ticket-${keys.join('-')}`,
  ]);
  const id = rows[0].id;
  while ((await client.query('select pii.process_request_chunk($1, 2) as n', [id])).rows[0].n > 0);
  await client.query('select pii.finish_request($1)', [id]);
  return id;
}

beforeAll(async () => {
  db = await createTestDatabase('audit');
  await loadFixture(db, 'crm.sql', 'crm_register.sql');
  const client = new pg.Client({ connectionString: db.url, application_name: 'audit-test-app' });
  await client.connect();
  try {
    requestId = await runRequest(client, ['3', '4', '5', '9003']);
    await client.query(`select * from pii.erase_subjects(array['6'])`);
    await client.query(`select pii.set_guard('app.orders', 'skip')`);
    await client.query(
      `insert into app.orders (id, customer_id, total, shipping_name) values (9001, 3, 1, 'First3 Last3')`,
    );
    await client.query(`select pii.set_guard('app.orders', 'scrub')`);
    await client.query(`update app.orders set shipping_address = '3 High Street' where customer_id = 3`);
    await client.query(`select pii.allow_return('9003')`);
    const { rows } = await client.query(`select pii.request_erasure(array['7']) as id`);
    await client.query(`select pii.fail_request($1, 'canceling statement due to statement timeout')`, [rows[0].id]);
    await client.query(`select pii.retry_request($1)`, [rows[0].id]);
  } finally {
    await client.end();
  }
});
afterAll(() => db?.drop());

describe('pii.audit is append-only', () => {
  const attempts: [string, string][] = [
    ['UPDATE', `update pii.audit set action = 'nothing happened' where action = 'request_erasure'`],
    ['DELETE', `delete from pii.audit where request_id = '${'00000000-0000-0000-0000-000000000000'}' or true`],
    ['TRUNCATE', `truncate pii.audit`],
  ];
  for (const [op, sql] of attempts) {
    it(`refuses ${op} even for the superuser that owns it (42501), changing nothing`, async () => {
      const { rows: who } = await db.query(
        `select r.rolsuper, pg_get_userbyid(c.relowner) = current_user as owner from pg_roles r, pg_class c
         where r.rolname = current_user and c.oid = 'pii.audit'::regclass`,
      );
      expect(who[0]).toEqual({ rolsuper: true, owner: true });
      const before = (
        await db.query(`select md5(string_agg(a::text, '|' order by id)) as h, count(*)::int as n from pii.audit a`)
      ).rows[0];
      await expectPgError(db.query(sql), '42501', new RegExp(`pii\\.audit is append-only: ${op} is not allowed`));
      const after = (
        await db.query(`select md5(string_agg(a::text, '|' order by id)) as h, count(*)::int as n from pii.audit a`)
      ).rows[0];
      expect(after).toEqual(before);
      expect(before.n).toBeGreaterThan(20);
    });
  }

  it('refuses the same inside a transaction that wrote audit rows itself', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`select pii.set_guard('app.orders', 'scrub')`);
      await expectPgError(
        client.query(`delete from pii.audit where action = 'set_guard'`),
        '42501',
        /append-only: DELETE/,
      );
      await client.query('rollback');
    } finally {
      client.release();
    }
  });
});

describe('pii.audit rows', () => {
  it('are written for registration, requests, chunks, completion, erase_subjects, guards, allow_return, failure and retry', async () => {
    const { rows } = await db.query(`select action, count(*)::int as n from pii.audit group by 1 order by 1`);
    expect(Object.fromEntries(rows.map((r) => [r.action, r.n]))).toEqual({
      register_subject_table: 1,
      register_table: 3,
      register_child_table: 2,
      register_column: 15,
      request_erasure: 2,
      erase_chunk: 2,
      request_finished: 1,
      erase_subjects: 1,
      set_guard: 2,
      guard_skip: 1,
      guard_scrub: 1,
      allow_return: 1,
      request_failed: 1,
      retry_request: 1,
    });
  });

  it('say who and from where: session user and application_name', async () => {
    const { rows } = await db.query(
      `select distinct actor = session_user as actor_ok, application from pii.audit where action not like 'register%'`,
    );
    expect(rows).toEqual([{ actor_ok: true, application: 'audit-test-app' }]);
  });

  it('carry the request id and counts per table for a request', async () => {
    const { rows } = await db.query(`select action, details from pii.audit where request_id = $1 order by id`, [
      requestId,
    ]);
    expect(rows).toEqual([
      { action: 'request_erasure', details: { source: 'api', mode: 'erase', subjects: 4, matched: 3, duplicates: 0 } },
      {
        action: 'erase_chunk',
        details: {
          items: 2,
          erased_now: 2,
          residuals: 0,
          rows: expect.objectContaining({ 'app.customers': expect.any(Number), 'app.events': expect.any(Number) }),
          shared_kept: {},
        },
      },
      { action: 'erase_chunk', details: expect.objectContaining({ items: 2, erased_now: 2 }) },
      {
        action: 'request_finished',
        details: {
          status: 'done',
          total: 4,
          matched: 3,
          erased: 3, // subjects erased, not the unmatched key
          failed: 0,
          residuals: 0,
          rows: {
            'app.customers': 3,
            'app.events': 12,
            'app.orders': 6,
            'app.order_items': 12,
            'app.engravings': 6,
            'app.loyalty_points': 9,
          },
        },
      },
    ]);
  });

  it('record guard actions by table, operation and counts, and allow_return by keyed hash', async () => {
    const { rows } = await db.query(
      `select action, details, subject_hash is not null as hashed from pii.audit
       where action in ('guard_skip', 'guard_scrub', 'allow_return') order by id`,
    );
    expect(rows).toEqual([
      {
        action: 'guard_skip',
        details: { table: 'app.orders', operation: 'insert', subjects: 1, rows: 1 },
        hashed: false,
      },
      {
        action: 'guard_scrub',
        details: { table: 'app.orders', operation: 'update', subjects: 1, rows: 2 },
        hashed: false,
      },
      { action: 'allow_return', details: {}, hashed: true },
    ]);
    const { rows: h } = await db.query(
      `select a.subject_hash = pii_internal.subject_hash(null, '9003') as same from pii.audit a where action = 'allow_return'`,
    );
    expect(h[0].same).toBe(true);
  });

  it('hold no subject key and no PII value', async () => {
    const { rows } = await db.query(`select string_agg(a::text, E'\\n') as all_rows from pii.audit a`);
    const text: string = rows[0].all_rows;
    for (const id of [3, 4, 5, 6, 7, 9003]) {
      for (const value of [
        `user${id}@example.com`,
        `First${id}`,
        `Last${id}`,
        `+44 7700 900${String(id).padStart(3, '0')}`,
        `${id} High Street`,
        `ticket-`,
      ]) {
        expect(text, value).not.toContain(value);
      }
    }
    // Keys are short numbers here: look for them as JSON values and in the only free-text field.
    const { rows: keys } = await db.query(
      `select count(*)::int as n from pii.audit a, jsonb_each_text(a.details) d
       where d.value in ('3', '4', '5', '6', '7', '9003') and d.key not in ('items', 'erased_now', 'subjects', 'matched', 'total', 'erased', 'rows', 'duplicates', 'failed', 'residuals')`,
    );
    expect(keys[0].n).toBe(0);
  });
});

describe('pii.audit with text keys', () => {
  let kdb: TestDatabase;
  beforeAll(async () => {
    kdb = await createTestDatabase('audit_text_keys');
    await loadFixture(kdb, 'requests_text_keys.sql');
  });
  afterAll(() => kdb?.drop());

  it('never holds a raw key, through request, erase_subjects, guards and allow_return', async () => {
    const handles = [1, 2, 3, 4].map((i) => `mbr-${createHash('md5').update(`member${i}`).digest('hex')}`);
    const { rows } = await kdb.query('select pii.request_erasure($1::text[], request_key => $2) as id', [
      handles.slice(0, 2),
      handles[0],
    ]);
    while ((await kdb.query('select pii.process_request_chunk($1) as n', [rows[0].id])).rows[0].n > 0);
    await kdb.query('select pii.finish_request($1)', [rows[0].id]);
    await kdb.query('select * from pii.erase_subjects($1::text[])', [[handles[2]]]);
    await kdb.query(`insert into acct.logins (id, handle, ip) values (9001, $1, '198.51.100.7')`, [handles[2]]);
    await kdb.query(`update acct.members set email = 'back@example.org' where handle = $1`, [handles[1]]);
    await kdb.query('select pii.allow_return($1)', [handles[2]]);
    await kdb.query('select pii.was_erased($1)', [handles[3]]);

    const { rows: audit } = await kdb.query(`select action, a::text as t from pii.audit a order by id`);
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining([
        'request_erasure',
        'erase_chunk',
        'request_finished',
        'erase_subjects',
        'guard_scrub',
        'allow_return',
      ]),
    );
    for (const a of audit) {
      for (const secret of [
        ...handles,
        'member1@example.org',
        'member2@example.org',
        'member3@example.org',
        'back@example.org',
        '198.51.100.7',
      ]) {
        expect(a.t, `${a.action} holds ${secret}`).not.toContain(secret);
      }
    }
  });
});
