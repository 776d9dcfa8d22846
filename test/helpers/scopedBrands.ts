// The scoped install of several tests: two brands sharing player ids (brands_scoped.sql),
// casino.players registered as the subject table scoped by brand_id, then the test's own
// registrations.
import { loadFixture } from './fixtures.js';
import { createTestDatabase, type TestDatabase } from './testDatabase.js';

export async function createScopedBrandsDatabase(name: string, registrations: string): Promise<TestDatabase> {
  const db = await createTestDatabase(name);
  await loadFixture(db, 'brands_scoped.sql');
  await db.query(
    `select pii.register_subject_table('casino.players', 'player_id', scope_column => 'brand_id'); ${registrations}`,
  );
  return db;
}
