// `lethe demo` (what `npm start` runs) as a real process: its own embedded PostgreSQL,
// install, seed, register, CSV import, worker, verification, before/after, audit.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../bin/lethe.js', import.meta.url));

describe('lethe demo', () => {
  it('runs end to end on an embedded PostgreSQL and exits 0', async () => {
    const { DATABASE_URL: _ignored, ...env } = process.env;
    const child = spawn(process.execPath, [BIN, 'demo'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr + stdout).toBe(0);
    expect(stdout).toMatch(/crm: 10,000 customers/);
    expect(stdout).toMatch(/503 subjects, 500 matched, 3 unmatched \(rows 504, 505, 506\), 2 duplicates/);
    expect(stdout).toMatch(/status done: 500\/500 subjects erased \(3 keys matched none\)/);
    expect(stdout).toMatch(/verified: no residual trace/);
    // Before: PII; after: gone, the record and the revenue kept.
    const [before, after] = stdout.split('== customer 1 after ==');
    expect(before).toMatch(/email\s+\S+@example\.com/);
    expect(after).toMatch(/email\s+∅/);
    expect(after).toMatch(/status\s+DEACTIVATED/);
    expect(after).toMatch(/events\s+0/);
    expect(after).toMatch(/orders_total\s+[1-9]/);
    expect(after).toMatch(/request_finished/);
    expect(stdout).toMatch(/demo finished in/);
  }, 300_000);
});
