// A CSV of customer ids 1..rows (header customer_id), for the import benchmarks.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';

export async function writeIdCsv(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  out.write('customer_id\n');
  const batch = 10_000;
  for (let i = 1; i <= rows; i += batch) {
    let s = '';
    for (let j = i; j < Math.min(i + batch, rows + 1); j++) s += `${j}\n`;
    if (!out.write(s)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}
