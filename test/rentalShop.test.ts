// Lethe fitted to a schema that is a graph (issue 12): the rental shop, where customers,
// staff and stores share address rows and payments are partitioned by month.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/testDatabase.js';
import { loadRentalShop, shopChecksums } from './helpers/rentalShop.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('rental_shop');
  await loadRentalShop(db);
});
afterAll(() => db.drop());

describe('rental shop fixture', () => {
  it('shares address rows between customers, staff and stores', async () => {
    const sums = await shopChecksums(db);
    expect(sums.address.size).toBe(43);
    expect(sums.customer.size).toBe(40);
    expect(sums.payment.size).toBe(120);
  });
});
