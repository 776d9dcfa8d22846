// Who may use the vault, with real LOGIN roles over real connections: pii_operator (and
// pii_admin) tokenize, only pii_dispatcher detokenizes; masked readers, auditors and the
// operator itself are refused, and nobody but Lethe's owner reads the vault's tables.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError, loadFixture } from './helpers/fixtures.js';
import { connectAs, createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';

let db: TestDatabase;
const password = randomBytes(12).toString('hex');
const groups = {
  operator: 'pii_operator',
  admin: 'pii_admin',
  dispatcher: 'pii_dispatcher',
  reader: 'pii_masked_reader',
  auditor: 'pii_auditor',
} as const;
type Who = keyof typeof groups;
const clients = {} as Record<Who, pg.Client>;
let token: string;

beforeAll(async () => {
  db = await createTestDatabase('vault_permissions');
  await loadFixture(db, 'vault_signup.sql');
  for (const [who, group] of Object.entries(groups)) {
    const role = `${db.name}_${who}`;
    await db.query(`create role ${role} login password '${password}'; grant ${group} to ${role}`);
    const c = new pg.Client({ connectionString: connectAs(db.url, role, password) });
    await c.connect();
    clients[who as Who] = c;
  }
});

afterAll(async () => {
  for (const c of Object.values(clients)) await c.end().catch(() => undefined);
  for (const who of Object.keys(groups)) await db.query(`drop role if exists ${db.name}_${who}`);
  await db.drop();
});

describe('vault permissions', () => {
  it('pii_operator and pii_admin tokenize', async () => {
    token = (await clients.operator.query(`select pii.tokenize('1', 'email', 'ada@example.com') as t`)).rows[0].t;
    expect(token).toMatch(/^tok_/);
    const { rows } = await clients.admin.query(
      `select * from pii.tokenize_many(array['2'], array['email'], array['bob@example.com'])`,
    );
    expect(rows[0].token).toMatch(/^tok_/);
  });

  it('pii_dispatcher detokenizes and cannot tokenize', async () => {
    const { rows } = await clients.dispatcher.query(`select value, status from pii.detokenize($1::text[], 'send')`, [
      [token],
    ]);
    expect(rows).toEqual([{ value: 'ada@example.com', status: 'ok' }]);
    await expectPgError(
      clients.dispatcher.query(`select pii.tokenize('3', 'email', 'c@example.com')`),
      '42501',
      /permission denied for function tokenize/,
    );
  });

  it.each(['operator', 'admin', 'reader', 'auditor'] as const)('%s is refused detokenize', async (who) => {
    await expectPgError(
      clients[who].query(`select * from pii.detokenize($1::text[], 'send')`, [[token]]),
      '42501',
      /permission denied for (function detokenize|schema pii)/,
    );
  });

  it.each(['reader', 'auditor'] as const)('%s is refused tokenize', async (who) => {
    await expectPgError(
      clients[who].query(`select pii.tokenize('3', 'email', 'c@example.com')`),
      '42501',
      /permission denied for (function tokenize|schema pii)/,
    );
  });

  it.each(['operator', 'admin', 'dispatcher', 'auditor'] as const)(
    'reading the vault tables or the key directly as %s is refused',
    async (who) => {
      for (const table of [
        'pii_internal.vault_kek',
        'pii_internal.vault_keys',
        'pii_internal.vault_entries',
        'pii_internal.api_keys',
      ]) {
        await expectPgError(
          clients[who].query(`select * from ${table}`),
          '42501',
          /permission denied for (table|schema pii_internal)/,
        );
      }
    },
  );

  it('only pii_admin declares token kinds', async () => {
    await clients.admin.query(`select pii.set_token_kind('email', true, 'email')`);
    await expectPgError(
      clients.operator.query(`select pii.set_token_kind('email', false)`),
      '42501',
      /permission denied for function set_token_kind/,
    );
  });

  it('only pii_admin rotates the KEK (pii.vault_rotate_kek)', async () => {
    for (const who of ['operator', 'dispatcher', 'auditor'] as const) {
      await expectPgError(
        clients[who].query(`select * from pii.vault_rotate_kek()`),
        '42501',
        /permission denied for function vault_rotate_kek/,
      );
    }
    const { rows } = await clients.admin.query(`select * from pii.vault_rotate_kek()`);
    expect(rows).toEqual([{ kek_location: 'embedded', rewrapped_keys: expect.any(String) }]);
  });

  it('debug_print_plan turned on by the operator, the dispatcher or the admin shows neither a KEK nor a data key in any plan', async () => {
    /** The bytes of a key as debug_print_plan prints a bytea constant (signed decimals). */
    const planBytes = (hex: string): string =>
      [...Buffer.from(hex, 'hex').subarray(0, 16)].map((b) => (b > 127 ? b - 256 : b)).join(' ');
    const notices: string[] = [];
    const collect = (n: { message?: string; detail?: string }): number =>
      notices.push(`${n.message ?? ''} ${n.detail ?? ''}`);
    const { operator, dispatcher, admin } = clients;
    const sessions = [operator, dispatcher, admin];
    for (const c of sessions) c.on('notice', collect);
    const kekNow = async () => (await db.query(`select encode(kek, 'hex') as k from pii_internal.vault_kek`)).rows[0].k;
    const keks = [await kekNow()];
    try {
      for (const c of sessions) await c.query(`set debug_print_plan = on; set client_min_messages = log`);
      await admin.query(`select * from pii.vault_rotate_kek()`);
      keks.push(await kekNow());
      // New subjects (data keys made and wrapped) and a known one (its key unwrapped).
      const { rows } = await operator.query(
        `select token from pii.tokenize_many(array['41', '42', '1'], array['email', 'phone', 'phone'],
                                             array['kim@example.com', '+1 555 0142', '+1 555 0101']) order by ordinality`,
      );
      const resolved = await dispatcher.query(`select value from pii.detokenize($1::text[], 'send')`, [
        rows.map((r) => r.token),
      ]);
      expect(resolved.rows.map((r) => r.value)).toEqual(['kim@example.com', '+1 555 0142', '+1 555 0101']);
    } finally {
      for (const c of sessions) {
        await c.query(`reset debug_print_plan; reset client_min_messages`);
        c.off('notice', collect);
      }
    }
    const keys = await db.query(
      `select unnest($1::text[]) as k
       union all select encode(pii_crypto.decrypt(w.wrapped_key, (select kek from pii_internal.vault_kek), 'aes'), 'hex')
       from pii_internal.vault_keys w`,
      [keks],
    );
    // Node dumps wrap lines anywhere: compare whitespace-normalised.
    const plans = notices.join(' ').replace(/\s+/g, ' ');
    expect(plans).toContain('PLANNEDSTMT'); // the plans were printed
    expect(keys.rows.length).toBeGreaterThan(3);
    for (const { k } of keys.rows as { k: string }[]) expect(plans).not.toContain(planBytes(k));
  });
});
