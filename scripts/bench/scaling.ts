// How cost grows with work (issue 13): pii.erase_subjects and the request path (request,
// chunks, finish in one transaction) at 1k, 10k, 50k and 200k subjects of the same
// dataset (scaled like the rest), each rolled back. Index-driven erasure keeps the time
// per subject flat; a quadratic step or a scan per call shows as a rising column.
import type pg from 'pg';
import type { Eraser } from './erasure.js';

export const SCALING_SUBJECTS = [1_000, 10_000, 50_000, 200_000] as const;

export interface ScalingPoint {
  subjects: number;
  eraseSeconds: number;
  requestSeconds: number;
}

export interface ScalingResult {
  points: ScalingPoint[];
  /** pii.settings.max_keys_per_call for the run, when the largest size is above the install's limit (restored afterwards). */
  maxKeysPerCall?: number;
}

/** The subject counts at this scale: the at scale 1, proportional below, at most half the customers. */
export function scalingSizes(scale: number, customers: number): number[] {
  const sizes = SCALING_SUBJECTS.map((n) => Math.max(5, Math.min(Math.round(n * scale), Math.floor(customers / 2))));
  return [...new Set(sizes)];
}

export async function benchScaling(
  db: pg.Client,
  eraser: Eraser,
  sizes: number[],
  log: (s: string) => void,
): Promise<ScalingResult> {
  // The same hash order as pickSubjects: each size's subjects include the smaller sizes'.
  const { rows } = await db.query<{ id: string }>(
    `select id::text as id from crm.customers order by hashint8extended(id, 20261126), id limit $1`,
    [Math.max(...sizes)],
  );
  const ids = rows.map((r) => r.id);
  // One pii.erase_subjects call per size: above the install's keys-per-call limit (100,000
  // by default) the limit is raised for the run and put back afterwards.
  const largest = Math.max(...sizes);
  const { rows: cfg } = await db.query<{ n: number }>('select max_keys_per_call as n from pii.settings');
  const limit = cfg[0]!.n;
  const raised = largest > limit;
  if (raised) await db.query('update pii.settings set max_keys_per_call = $1', [largest]);
  const points: ScalingPoint[] = [];
  try {
    for (const n of sizes) {
      const keys = ids.slice(0, n);
      const erase = await eraser.run('lethe', keys);
      await eraser.restore();
      const request = await eraser.run('request', keys);
      await eraser.restore();
      log(
        `scaling: ${n} subjects: erase_subjects ${erase.seconds.toFixed(2)} s, request path ${request.seconds.toFixed(2)} s`,
      );
      points.push({ subjects: n, eraseSeconds: erase.seconds, requestSeconds: request.seconds });
    }
  } finally {
    if (raised) await db.query('update pii.settings set max_keys_per_call = $1', [limit]);
  }
  return raised ? { points, maxKeysPerCall: largest } : { points };
}
