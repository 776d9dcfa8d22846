// Erasure by query, retention and holds on a scoped install (F21): the query returns the
// key and the scope, and brand 1's pl-1 never touches brand 2's pl-1.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectPgError } from './helpers/fixtures.js';
import { type TestDatabase } from './helpers/testDatabase.js';
import { createScopedBrandsDatabase } from './helpers/scopedBrands.js';

let db: TestDatabase;
const ace = `select p.player_id, p.brand_id from casino.players p where p.nickname = 'ace'`;

beforeAll(async () => {
  db = await createScopedBrandsDatabase(
    'retention_scoped',
    `
    select pii.register_column('casino.players', 'nickname', 'null', 'partial:1,0', 'name');
    select pii.register_column('casino.players', 'email', 'null', 'email', 'contact');
    select pii.register_table('casino.bets', 'player_id', 'delete', unenforced_join => true);`,
  );
});
afterAll(() => db?.drop());

describe('pii.request_erasure_from_query on a scoped install', () => {
  it('refuses a query without the scope column, or with the wrong scope type', async () => {
    await expectPgError(
      db.query(`select * from pii.request_erasure_from_query('select p.player_id from casino.players p', 5)`),
      '42P10',
      /fewer columns than expected: it must return the key and the scope/,
    );
    await expectPgError(
      db.query(
        `select * from pii.request_erasure_from_query('select p.player_id, p.brand_id::text from casino.players p', 5)`,
      ),
      '42804',
      /returns text, text but the subject key is text, integer/,
    );
  });

  it('dry run counts brand 1’s pl-1 only; the request erases it and leaves brand 2’s pl-1', async () => {
    const { rows } = await db.query(`select * from pii.request_erasure_from_query($1, 5, dry_run => true)`, [ace]);
    expect(rows[0]).toMatchObject({ subjects: '1', rows_to_change: { 'casino.players': 1, 'casino.bets': 2 } });
    const id = (await db.query(`select request_id from pii.request_erasure_from_query($1, 5)`, [ace])).rows[0]
      .request_id;
    while ((await db.query('select pii.process_request_chunk($1) as n', [id])).rows[0].n > 0);
    expect((await db.query('select pii.finish_request($1) as s', [id])).rows[0].s).toBe('done');
    const { rows: bets } = await db.query(`select id::int, brand_id from casino.bets order by id`);
    expect(bets).toEqual([
      { id: 2, brand_id: 2 },
      { id: 3, brand_id: 1 },
    ]);
    expect(
      (await db.query(`select nickname from casino.players where brand_id = 2 and player_id = 'pl-1'`)).rows[0]
        .nickname,
    ).toBe('queen');
  });

  it('retention leaves out subjects already erased, and a hold with scopes keeps that brand’s subject out', async () => {
    await db.query(`select pii.place_hold(array['pl-2'], 'dispute', current_date + 10, scopes => array['1'])`);
    await db.query(
      `select pii.set_retention_policy('all-players', 'select p.player_id, p.brand_id from casino.players p', 5)`,
    );
    const { rows } = await db.query(`select candidates, held from pii.preview_retention('all-players')`);
    // (1, pl-1) was erased above and (1, pl-2) is held: only (2, pl-1) is a candidate.
    expect(rows[0]).toEqual({ candidates: '1', held: '1' });
  });
});
