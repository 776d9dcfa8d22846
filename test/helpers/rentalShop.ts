// The rental-shop fixture (test/fixtures/rentalShop.sql) and row checksums over it: a test
// erases some customers and asserts which rows changed, table by table.
import type { TestDatabase } from './testDatabase.js';
import { loadFixture } from './fixtures.js';

export const rentalShopTables = ['address', 'store', 'staff', 'customer', 'rental', 'payment'] as const;
export type RentalShopTable = (typeof rentalShopTables)[number];

/** Loads the rental shop into schema shop (nothing registered). */
export function loadRentalShop(db: TestDatabase): Promise<void> {
  return loadFixture(db, 'rentalShop.sql');
}

/** md5 of every row of a shop table, by its first primary-key column (payment: payment_id). */
export async function rowChecksums(db: TestDatabase, table: RentalShopTable): Promise<Map<number, string>> {
  const { rows } = await db.query<{ id: number; sum: string }>(
    `select md5((t.*)::text) as sum, ${table === 'payment' ? 'payment_id' : `${table}_id`} as id from shop.${table} t`,
  );
  return new Map(rows.map((r) => [Number(r.id), r.sum]));
}

/** Checksums of all shop tables. */
export async function shopChecksums(db: TestDatabase): Promise<Record<RentalShopTable, Map<number, string>>> {
  const entries = await Promise.all(rentalShopTables.map(async (t) => [t, await rowChecksums(db, t)] as const));
  return Object.fromEntries(entries) as Record<RentalShopTable, Map<number, string>>;
}

/** Ids whose row changed or disappeared between two checksum maps. */
export function changedIds(before: Map<number, string>, after: Map<number, string>): number[] {
  return [...before]
    .filter(([id, sum]) => after.get(id) !== sum)
    .map(([id]) => id)
    .sort((a, b) => a - b);
}
