// The vault on a scoped install (brands sharing player ids): tokens and deterministic
// tokens never cross scopes, and erasing brand 1's pl-1 leaves brand 2's pl-1 readable.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError } from './helpers/fixtures.js';
import { type TestDatabase } from './helpers/testDatabase.js';
import { createScopedBrandsDatabase } from './helpers/scopedBrands.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createScopedBrandsDatabase(
    'vault_scoped',
    `
    select pii.register_column('casino.players', 'email', 'null', 'email', 'contact');
    select pii.set_token_kind('email', deterministic => true, normaliser => 'email');`,
  );
});
afterAll(() => db.drop());

describe('pii.tokenize_many on a scoped install', () => {
  it('never gives the same deterministic token across scopes, and the same one within a scope', async () => {
    const { rows } = await db.query(
      `select * from pii.tokenize_many(array['pl-1', 'pl-1', 'pl-1'], array['email', 'email', 'email'],
                                       array['same@example.com', 'same@example.com', 'SAME@example.com '],
                                       scopes => array['1', '2', '1'])`,
    );
    const [brand1, brand2, brand1Again] = rows.map((r) => r.token);
    expect(brand1).not.toBe(brand2);
    expect(brand1Again).toBe(brand1);
  });

  it('requires scopes, one for all or one per value, and names the bad one by position', async () => {
    await expectPgError(
      db.query(`select pii.tokenize('pl-1', 'email', 'x@example.com')`),
      '22023',
      /scoped by brand_id: scopes are required/,
    );
    await expectPgError(
      db.query(
        `select * from pii.tokenize_many(array['a', 'b'], array['email', 'email'], array['x', 'y'], array['1', 'brand'])`,
      ),
      '22P02',
      /subject keys must be valid text and scopes valid integer/,
    );
  });

  it("erasing brand 1's pl-1 shreds only brand 1's entries", async () => {
    const { rows } = await db.query(
      `select pii.tokenize('pl-2', 'phone', '+1 555 0001', scope => '1') as b1, pii.tokenize('pl-2', 'phone', '+1 555 0002', scope => '2') as b2`,
    );
    await db.query(`select * from pii.erase_subjects(array['pl-2'], scopes => array['1'])`);
    const resolved = await db.query(`select token, status, value from pii.detokenize($1::text[], 'test')`, [
      [rows[0].b1, rows[0].b2],
    ]);
    expect(resolved.rows).toEqual([
      { token: rows[0].b1, status: 'erased', value: null },
      { token: rows[0].b2, status: 'ok', value: '+1 555 0002' },
    ]);
  });
});
