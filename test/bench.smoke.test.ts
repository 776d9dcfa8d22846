// `npm run bench` at a tiny scale, only to prove that it still runs end to end and that
// every method it compares leaves the same state. Performance is never asserted here:
// the numbers mean something only at scale 1 (see BENCHMARKS.md).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'lethe-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // The test server: the benchmark creates a database of its own on it and drops it.
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/bench.ts', ...args], {
      env: { ...process.env, DATABASE_URL: inject('adminUrl') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('npm run bench (smoke)', () => {
  it('runs every section at scale 0.002 and writes the report', { timeout: 240_000 }, async () => {
    const output = join(dir, 'BENCHMARKS.md');
    const { code, stdout, stderr } = await runBench(['--scale', '0.002', '--output', output]);
    expect(code, stderr.slice(-3000)).toBe(0);

    // The summary table has a row for every item, and no section failed.
    for (const item of ['1', '2', '3', '4', '5', '6', '7', '8']) expect(stdout).toMatch(new RegExp(`^${item}  `, 'm'));
    expect(stdout).not.toMatch(/section \w+ failed/);

    const report = readFileSync(output, 'utf8');
    expect(report).toMatch(/^# Benchmarks/);
    expect(report).toContain('## Summary');
    expect(report).toContain('PostgreSQL ');
    // Every erasure method left the floor's state on the same subjects.
    const bulk = report.slice(report.indexOf('## 1-2. Bulk erasure'), report.indexOf('## 3. Verification'));
    const methodRows = bulk.split('\n').filter((l) => /^\| (pii\.|per-subject|row-at-a-time)/.test(l));
    expect(methodRows).toHaveLength(4);
    for (const row of methodRows) expect(row.trim().endsWith('| yes |'), row).toBe(true);
    // The committed request was verified clean.
    expect(report).toMatch(/Residual traces: 0\./);
  });
});
