// Scoped installs: two brands share player ids; the subject is (brand, player id).
// Erasing brand 1's pl-1 must never touch brand 2's pl-1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestDatabase } from './helpers/testDatabase.js';
import { createScopedBrandsDatabase } from './helpers/scopedBrands.js';
import { expectPgError } from './helpers/fixtures.js';

let db: TestDatabase;

beforeAll(async () => {
  db = await createScopedBrandsDatabase(
    'scoped',
    `
    select pii.register_column('casino.players', 'nickname', 'null', 'partial:1,0', 'name');
    select pii.register_column('casino.players', 'email', 'null', 'email', 'contact');
    select pii.register_column('casino.players', 'status', 'set:DEACTIVATED', 'clear', 'status');
    select pii.register_table('casino.bets', 'player_id', 'delete', unenforced_join => true);
    select pii.register_table('casino.sessions', 'player_id', 'anonymize', scope_column => 'brand', unenforced_join => true);
    select pii.register_column('casino.sessions', 'ip', 'null', 'hide', 'network');`,
  );
});
afterAll(() => db.drop());

describe('scoped registration', () => {
  it("defaults a table's scope column to the subject table's, and refuses a table without one", async () => {
    const { rows } = await db.query(`select table_name, scope_column from pii.registered_tables order by table_name`);
    expect(rows).toEqual([
      { table_name: 'casino.bets', scope_column: 'brand_id' },
      { table_name: 'casino.players', scope_column: 'brand_id' },
      { table_name: 'casino.sessions', scope_column: 'brand' },
    ]);
    await expectPgError(
      db.query(`select pii.register_table('casino.no_scope', 'player_id', 'delete')`),
      '42703',
      /column "brand_id" does not exist in table casino\.no_scope/,
    );
  });
});

describe('scoped erasure', () => {
  it('requires scopes, one for all keys or one per key', async () => {
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['pl-1'])`),
      '22023',
      /scoped by brand_id: scopes are required/,
    );
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['pl-1', 'pl-2'], array['1', '2', '3'])`),
      '22023',
      /scopes has 3 elements; expected 1 or 2/,
    );
    await expectPgError(
      db.query(`select * from pii.erase_subjects(array['pl-1'], array['one'])`),
      '22P02',
      /scopes valid integer/,
    );
  });

  it("erases brand 1's pl-1 and nothing of brand 2's pl-1", async () => {
    const { rows } = await db.query(
      `select table_name, rows_affected from pii.erase_subjects(array['pl-1'], array['1'])`,
    );
    expect(rows).toEqual([
      { table_name: 'casino.bets', rows_affected: '2' },
      { table_name: 'casino.sessions', rows_affected: '1' },
      { table_name: 'casino.players', rows_affected: '1' },
    ]);
    const players = await db.query(
      `select brand_id, player_id, nickname, email, status from casino.players order by brand_id, player_id`,
    );
    expect(players.rows).toEqual([
      { brand_id: 1, player_id: 'pl-1', nickname: null, email: null, status: 'DEACTIVATED' },
      { brand_id: 1, player_id: 'pl-2', nickname: 'king', email: 'king@b1.example', status: 'ACTIVE' },
      { brand_id: 2, player_id: 'pl-1', nickname: 'queen', email: 'queen@b2.example', status: 'ACTIVE' },
    ]);
    const bets = await db.query(`select id, brand_id, player_id from casino.bets order by id`);
    expect(bets.rows).toEqual([
      { id: '2', brand_id: 2, player_id: 'pl-1' },
      { id: '3', brand_id: 1, player_id: 'pl-2' },
    ]);
    const sessions = await db.query(`select id, ip from casino.sessions order by id`);
    expect(sessions.rows).toEqual([
      { id: '1', ip: null },
      { id: '2', ip: '10.0.0.2' },
    ]);
  });

  it("tombstones (scope, key): brand 2's pl-1 was not erased", async () => {
    expect((await db.query(`select erased from pii.was_erased('pl-1', '1')`)).rows).toEqual([{ erased: true }]);
    expect((await db.query(`select erased from pii.was_erased('pl-1', '2')`)).rows).toEqual([{ erased: false }]);
  });

  it('takes one scope per key', async () => {
    const { rows } = await db.query(
      `select table_name, rows_affected from pii.erase_subjects(array['pl-2', 'pl-1'], array['1', '2'])`,
    );
    expect(rows.find((r) => r.table_name === 'casino.players')?.rows_affected).toBe('2');
    const left = await db.query(`select count(*) as n from casino.players where email is not null`);
    expect(left.rows[0].n).toBe('0');
  });
});
