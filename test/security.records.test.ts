// Security, part B (issue 11, attacks 13-15): no identifier in Lethe's own records.
// Requests, items, residuals, the audit trail, graphile-worker's job rows, worker logs,
// errors handed to programs and pii.discover's findings keep ids, counts, SQLSTATEs,
// object names and keyed hashes, never a key, a value or a database error's text.
// Each test is one attack, made through real LOGIN roles over their own connections.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLethe, LetheError, runWorker, type Lethe } from '../src/api/index.js';
import { createDb } from '../src/sql/db.js';
import { processRequestChunk } from '../src/sql/processRequestChunk.js';
import { loadFixture, requestErasureWithOneAttempt } from './helpers/fixtures.js';
import { admin, connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

const password = randomBytes(12).toString('hex');
const suffix = randomBytes(4).toString('hex');
const roles = { operator: `lethe_secr_op_${suffix}`, auditor: `lethe_secr_aud_${suffix}` };

let crm: TestDatabase;
let members: TestDatabase;
const clients: pg.Client[] = [];

function urlAs(db: TestDatabase, role: string): string {
  return connectAs(db.url, role, password);
}

async function connect(db: TestDatabase, role: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: urlAs(db, role) });
  await c.connect();
  clients.push(c);
  return c;
}

beforeAll(async () => {
  for (const r of Object.values(roles)) await admin(`create role ${r} login password '${password}'`);
  await admin(`grant pii_operator to ${roles.operator}; grant pii_auditor to ${roles.auditor}`);
  crm = await createTestDatabase('sec_records');
  await loadFixture(crm, 'crm.sql', 'requests_extra_customers.sql', 'crm_register.sql');
});

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => undefined);
  for (const db of [crm, members]) {
    if (!db) continue;
    for (const r of Object.values(roles)) await db.query(`drop owned by ${r}`).catch(() => undefined);
    await db.drop();
  }
  for (const r of Object.values(roles)) await admin(`drop role if exists ${r}`).catch(() => undefined);
});

describe('13 error texts', () => {
  let lethe: Lethe;
  afterAll(() => lethe?.close());

  it('13 an application trigger’s RAISE text (with an email) lands in worker logs, last_error, requests, items and the audit', async () => {
    const email = 'user50@example.com';
    // The application's own rule: it names the customer in its message.
    await crm.query(`
      create function app.orders_frozen() returns trigger language plpgsql as $$
      begin
        if old.customer_id in (50, 51) then
          raise exception 'order % of % is frozen', old.id, (select c.email from app.customers c where c.id = old.customer_id)
            using detail = 'customer ' || old.customer_id;
        end if;
        return new;
      end $$;
      create trigger orders_frozen before update on app.orders for each row execute function app.orders_frozen();`);

    const logs: string[] = [];
    const worker = await runWorker({
      connectionString: crm.url,
      pollInterval: 100,
      log: (level, m) => logs.push(`${level}: ${m}`),
    });
    const op = await connect(crm, roles.operator);
    lethe = createLethe({ connectionString: urlAs(crm, roles.operator) });
    let id: string;
    try {
      id = await requestErasureWithOneAttempt(crm, ['50']);
      const failed = await lethe.waitForRequest(id, { timeoutMs: 30_000 });
      expect(failed.status).toBe('failed');
      expect(failed.error).toMatch(/P0001/);
    } finally {
      await worker.stop();
    }

    // A program calling the chunk itself gets a LetheError: SQLSTATE kept, no email.
    const other = (await op.query(`select pii.request_erasure(array['51']) as id`)).rows[0].id as string;
    const letheDb = createDb(new pg.Pool({ connectionString: urlAs(crm, roles.operator), max: 1 }));
    const err = await processRequestChunk(letheDb, other).then(
      () => undefined,
      (e: unknown) => e,
    );
    await letheDb.destroy();
    expect(err).toBeInstanceOf(LetheError);
    expect((err as LetheError).code).toBe('P0001');
    expect(JSON.stringify({ m: (err as LetheError).message, d: (err as LetheError).detail })).not.toMatch(
      /user5\d@example\.com|frozen/,
    );

    const stored = await crm.query(
      `select (select coalesce(string_agg(last_error, ' '), '') from graphile_worker._private_jobs where key = $2) as last_error,
              (select error from pii.requests where id = $1) as request_error,
              (select string_agg(error, ' ') from pii_internal.request_items where request_id = $1) as item_errors,
              (select string_agg(a::text, ' ') from pii.audit a where a.request_id = $1) as audit`,
      [id, `lethe:request:${id}`],
    );
    const everything = JSON.stringify({ ...stored.rows[0], logs });
    expect(everything).toMatch(/P0001/);
    expect(everything).not.toContain(email);
    expect(everything).not.toMatch(/frozen/);
  });
});

describe('14 residual locators', () => {
  it('14 pii_internal.request_residuals.row_key stores the subject table’s primary key (the raw subject key) as JSON', async () => {
    members = await createTestDatabase('sec_records_members');
    await loadFixture(members, 'requests_text_keys.sql');
    // An unregistered column holding the member's email: a residual the request records.
    await members.query(
      `alter table acct.members add column bio text; update acct.members set bio = 'write to ' || email`,
    );
    const handle = (await members.query(`select 'mbr-' || md5('member3') as h`)).rows[0].h as string;
    const op = await connect(members, roles.operator);
    const id = (await op.query('select pii.request_erasure($1::text[]) as id', [[handle]])).rows[0].id as string;
    while ((await op.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
    expect((await op.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('failed');

    const stored = await members.query(`select string_agg(r::text, ' ') as t from pii_internal.request_residuals r`);
    expect(stored.rows[0].t).toMatch(/acct\.members/);
    expect(stored.rows[0].t).not.toContain(handle);
    // The locator still finds the row: reported while the email is there, gone once removed.
    const verify = () => op.query('select table_name, column_name from pii.verify_erasure($1)', [id]);
    expect((await verify()).rows).toEqual([{ table_name: 'acct.members', column_name: 'bio' }]);
    await members.query(`update acct.members set bio = null where handle = $1`, [handle]);
    expect((await verify()).rows).toEqual([]);
  });
});

describe('15 discovery findings', () => {
  it('15 pii.discover() shows jsonb object keys (an email used as a key) to an auditor who cannot read the table', async () => {
    await crm.query(`
      create table app.profiles (id bigint primary key, prefs jsonb);
      insert into app.profiles select g, jsonb_build_object('fan' || g || '@news.example', '+44 7700 900' || lpad(g::text, 3, '0'))
      from generate_series(1, 5) g;`);
    const aud = await connect(crm, roles.auditor);
    expect(
      (
        await aud.query(
          `select has_table_privilege((select c.oid from pg_class c where c.relname = 'profiles'), 'select') as r`,
        )
      ).rows[0].r,
    ).toBe(false);
    const { rows } = await aud.query(`select * from pii.discover()`);
    const findings = rows.filter((r) => r.table_name === 'app.profiles');
    // Something is reported (so the test can fail), nothing of the data.
    expect(findings.length).toBeGreaterThan(0);
    expect(JSON.stringify(findings)).not.toMatch(/@news\.example/);
  });
});
