// The CSV the demo's privacy team uploads: 500 customers (Optimove's customer_id header),
// plus what real files contain: a duplicate line and ids that match nobody.
import { writeFile } from 'node:fs/promises';

export interface DemoCsv {
  path: string;
  customerIds: number[];
  unknownIds: number[];
}

export async function writeDemoCsv(path: string, customers: number, count = 500): Promise<DemoCsv> {
  const step = Math.max(1, Math.floor(customers / count));
  const customerIds = Array.from({ length: Math.min(count, customers) }, (_, i) => 1 + i * step);
  const unknownIds = [customers + 1001, customers + 1002, customers + 1003];
  const lines = [
    'customer_id',
    ...customerIds.map(String),
    String(customerIds[0]),
    String(customerIds[1]),
    ...unknownIds.map(String),
  ];
  await writeFile(path, lines.join('\n') + '\n');
  return { path, customerIds, unknownIds };
}
