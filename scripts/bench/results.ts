// Everything one benchmark run measured, and the summary rows (ratio against goal) that
// the stdout table and BENCHMARKS.md are made of.
import type { CsvImportResult } from './csvImport.js';
import type { BulkErasureResult, CommittedRequestResult, SingleResult, VerifyResult } from './erasure.js';
import type { BulkProfile } from './erasureProfile.js';
import type { GuardResult } from './guards.js';
import type { MachineInfo, ServerInfo } from './machine.js';
import type { MaskingResult } from './masking.js';
import type { RetentionResult } from './retention.js';
import type { ScalingResult } from './scaling.js';
import type { StatementStat } from './profile.js';
import type { RestoreReplayResult } from './restoreReplay.js';
import type { Dataset } from './setup.js';
import type { VaultResult } from './vault.js';
import { fmtInt, fmtMs, fmtRatio, fmtSeconds } from './stats.js';

export interface BenchOptions {
  scale: number;
  pairs: number;
  bulkSubjects: number;
  cappedSubjects: number;
  singleSubjects: number;
  lookups: number;
  guardRows: number;
  csvRows: number;
  vaultValues: number;
  reusedDataset: boolean;
}

export interface BenchResults {
  startedAt: Date;
  finishedAt?: Date;
  options: BenchOptions;
  machine: MachineInfo;
  server: ServerInfo;
  dataset: Dataset | { reused: true; bytes: number; counts: Record<string, number> };
  bulk?: BulkErasureResult;
  profile?: BulkProfile;
  single?: SingleResult;
  masking?: MaskingResult;
  committed?: CommittedRequestResult;
  /** The same with two workers (two chunks at once), on as many other subjects. */
  committedParallel?: CommittedRequestResult;
  verify?: VerifyResult;
  verifyStatements?: StatementStat[];
  guards?: GuardResult;
  csv?: CsvImportResult;
  restore?: RestoreReplayResult;
  vault?: VaultResult;
  retention?: RetentionResult;
  scaling?: ScalingResult;
  /** Sections that failed, with the error (the rest of the run still reports). */
  errors: Array<{ section: string; message: string }>;
}

export type Verdict = 'meets' | 'MISSES' | 'info' | 'pending';

export interface SummaryRow {
  item: string;
  measure: string;
  ours: string;
  baseline: string;
  ratio: string;
  goal: string;
  verdict: Verdict;
}

/** Throughput ratio: the floor's time over ours (1.0 = as fast as the floor; higher is better). */
export function throughputRatio(oursSeconds: number, floorSeconds: number): number {
  return floorSeconds / oursSeconds;
}

function verdict(ok: boolean | undefined): Verdict {
  return ok === undefined ? 'info' : ok ? 'meets' : 'MISSES';
}

export function summaryRows(r: BenchResults): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const b = r.bulk;
  if (b) {
    const floor = b.medians.hand;
    const n = fmtInt(b.subjects);
    const lt = throughputRatio(b.medians.lethe, floor);
    rows.push({
      item: '1',
      measure: `bulk erasure, ${n} subjects: pii.erase_subjects vs hand-written SQL`,
      ours: fmtSeconds(b.medians.lethe),
      baseline: fmtSeconds(floor),
      ratio: fmtRatio(lt),
      goal: '>= 0.90x throughput',
      verdict: verdict(lt >= 0.9),
    });
    for (const m of ['plpgsql', 'client'] as const) {
      if (!b.samples[m].length) continue;
      const t = b.bulkSeconds[m];
      rows.push({
        item: '1',
        measure: `${m === 'plpgsql' ? 'per-subject PL/pgSQL loop' : 'row-at-a-time from a client'} (${fmtInt(b.capped)} subjects, x${(b.subjects / b.capped).toFixed(0)} extrapolated)`,
        ours: fmtSeconds(t),
        baseline: fmtSeconds(floor),
        ratio: fmtRatio(throughputRatio(t, floor)),
        goal: 'reported beside',
        verdict: 'info',
      });
    }
    const rt = throughputRatio(b.medians.request, floor);
    if (b.samples.request.length)
      rows.push({
        item: '2',
        measure: `request + chunks + finish, ${n} subjects, in one transaction`,
        ours: fmtSeconds(b.medians.request),
        baseline: fmtSeconds(floor),
        ratio: fmtRatio(rt),
        goal: '>= 0.90x throughput',
        verdict: verdict(rt >= 0.9),
      });
  }
  if (r.committed && b) {
    const ct = throughputRatio(r.committed.seconds, b.medians.hand);
    rows.push({
      item: '2',
      measure: `request + graphile-worker to done, ${fmtInt(b.subjects)} subjects, committed (1 run)`,
      ours: fmtSeconds(r.committed.seconds),
      baseline: fmtSeconds(b.medians.hand),
      ratio: fmtRatio(ct),
      goal: '>= 0.90x throughput',
      verdict: verdict(ct >= 0.9),
    });
  }
  if (r.committedParallel && b) {
    const pt = throughputRatio(r.committedParallel.seconds, b.medians.hand);
    rows.push({
      item: '2',
      measure: `request + graphile-worker to done, ${fmtInt(b.subjects)} other subjects, ${r.committedParallel.workers} workers, committed (1 run)`,
      ours: fmtSeconds(r.committedParallel.seconds),
      baseline: fmtSeconds(b.medians.hand),
      ratio: fmtRatio(pt),
      goal: '>= 1.30x throughput',
      verdict: verdict(pt >= 1.3),
    });
  }
  if (r.verify && b) {
    if (r.verify.chunkMedian !== undefined) {
      const cr = r.verify.chunkMedian / b.medians.lethe;
      rows.push({
        item: '3',
        measure: `verification per chunk (as the request path does it) of the ${fmtInt(b.subjects)} vs the erasure`,
        ours: fmtSeconds(r.verify.chunkMedian),
        baseline: fmtSeconds(b.medians.lethe),
        ratio: fmtRatio(cr),
        goal: '<= 0.25x time',
        verdict: verdict(cr <= 0.25),
      });
    }
    const vr = r.verify.median / b.medians.lethe;
    rows.push({
      item: '3',
      measure: `pii.verify_erasure of the ${fmtInt(b.subjects)} on demand vs the erasure (pii.erase_subjects)`,
      ours: fmtSeconds(r.verify.median),
      baseline: fmtSeconds(b.medians.lethe),
      ratio: fmtRatio(vr),
      goal: '<= 0.50x time',
      verdict: verdict(vr <= 0.5),
    });
  }
  if (r.single) {
    const s = r.single;
    rows.push({
      item: '4',
      measure: `single-subject erasure p50 (${s.subjects} subjects)`,
      ours: fmtMs(s.lethe.p50),
      baseline: fmtMs(s.hand.p50),
      ratio: fmtRatio(s.lethe.p50 / s.hand.p50),
      goal: 'reported',
      verdict: 'info',
    });
    rows.push({
      item: '4',
      measure: 'single-subject erasure p95',
      ours: fmtMs(s.lethe.p95),
      baseline: fmtMs(s.hand.p95),
      ratio: fmtRatio(s.lethe.p95 / s.hand.p95),
      goal: 'reported',
      verdict: 'info',
    });
  }
  const m = r.masking;
  if (m?.status === 'pending') {
    rows.push({
      item: '5',
      measure: 'masked views',
      ours: '-',
      baseline: '-',
      ratio: '-',
      goal: '<= 1.10x scan',
      verdict: 'pending',
    });
  } else if (m) {
    const scan = m.scanCopy.maskedMedian / m.scanCopy.baseMedian;
    rows.push({
      item: '5',
      measure: 'masked.customers full scan (COPY TO STDOUT) vs crm.customers',
      ours: fmtSeconds(m.scanCopy.maskedMedian),
      baseline: fmtSeconds(m.scanCopy.baseMedian),
      ratio: fmtRatio(scan),
      goal: '<= 1.10x time',
      verdict: verdict(scan <= 1.1),
    });
    const fetch = m.scanFetch.maskedMedian / m.scanFetch.baseMedian;
    rows.push({
      item: '5',
      measure: 'masked.customers full scan, fetched by a client (cursor, as psql)',
      ours: fmtSeconds(m.scanFetch.maskedMedian),
      baseline: fmtSeconds(m.scanFetch.baseMedian),
      ratio: fmtRatio(fetch),
      goal: '<= 1.10x time',
      verdict: verdict(fetch <= 1.1),
    });
    rows.push({
      item: '5',
      measure: `point lookup by key, p50 of ${fmtInt(m.lookups)} (${m.lookupUsesIndex ? 'index scan' : 'NO index scan'})`,
      ours: fmtMs(m.lookup.maskedMedian),
      baseline: fmtMs(m.lookup.baseMedian),
      ratio: fmtRatio(m.lookup.maskedMedian / m.lookup.baseMedian),
      goal: 'uses the index',
      verdict: verdict(m.lookupUsesIndex),
    });
    rows.push({
      item: '5',
      measure: `support query (customer + last 10 orders), p50 of ${fmtInt(m.lookups)}`,
      ours: fmtMs(m.support.maskedMedian),
      baseline: fmtMs(m.support.baseMedian),
      ratio: fmtRatio(m.support.maskedMedian / m.support.baseMedian),
      goal: 'reported',
      verdict: 'info',
    });
  }
  if (r.guards) {
    const g = r.guards;
    const gr = g.guardedMedian / g.unguardedMedian;
    rows.push({
      item: '6',
      measure: `COPY ${fmtInt(g.rows)} events with guards vs without (${fmtInt(g.tombstones)} tombstones)`,
      ours: fmtSeconds(g.guardedMedian),
      baseline: fmtSeconds(g.unguardedMedian),
      ratio: fmtRatio(gr),
      goal: '<= 1.15x time',
      verdict: verdict(gr <= 1.15),
    });
    if (g.withIdentifiers?.length) {
      const ir = g.withIdentifiersMedian / g.unguardedMedian;
      rows.push({
        item: '6',
        measure: `the same COPY with ${fmtInt(g.identifierTombstones)} identifier tombstones too (vs without guards; ${fmtRatio(g.withIdentifiersMedian / g.guardedMedian)} of without them)`,
        ours: fmtSeconds(g.withIdentifiersMedian),
        baseline: fmtSeconds(g.unguardedMedian),
        ratio: fmtRatio(ir),
        goal: '<= 1.15x time',
        verdict: verdict(ir <= 1.15),
      });
    }
  }
  if (r.csv) {
    const c = r.csv;
    const rps = c.rows / c.stagingMedian;
    rows.push({
      item: '7',
      measure: `COPY ${fmtInt(c.rows)} keys into pii.import_rows (vs a plain unlogged table)`,
      ours: `${fmtInt(rps)} rows/s`,
      baseline: `${fmtInt(c.rows / c.floorMedian)} rows/s`,
      ratio: fmtRatio(c.floorMedian / c.stagingMedian),
      goal: '>= 200,000 rows/s',
      verdict: verdict(rps >= 200_000),
    });
    if (c.importer) {
      const staged = c.importer.stagingSeconds ? c.rows / c.importer.stagingSeconds : undefined;
      rows.push({
        item: '7',
        measure: `the importer (src/csv), CSV file to queued request${staged ? `; staging ${fmtInt(staged)} rows/s` : ''}`,
        ours: `${fmtInt(c.importer.rowsPerSecond)} rows/s`,
        baseline: '-',
        ratio: '-',
        goal: '>= 200,000 rows/s end to end',
        verdict: verdict(c.importer.rowsPerSecond >= 200_000),
      });
    }
  }
  if (r.restore) {
    const x = r.restore;
    rows.push({
      item: '9',
      measure: `replay of ${fmtInt(x.subjects)} restored subjects (restore_check ${fmtSeconds(x.restoreCheckSeconds)} + requests) vs the original request, each on a fresh copy of the backup`,
      ours: fmtSeconds(x.replayTotalSeconds),
      baseline: fmtSeconds(x.originalSeconds),
      ratio: fmtRatio(x.ratio),
      goal: '<= 1.10x time',
      verdict: verdict(x.ratio <= 1.1),
    });
  }
  if (r.vault) rows.push(...vaultRows(r.vault));
  if (r.scaling) rows.push(...scalingRows(r.scaling));
  if (r.retention) {
    const t = r.retention;
    for (const side of ['preview', 'enforce'] as const)
      rows.push({
        item: '10',
        measure: `pii.${side}_retention, ${fmtInt(t.candidates)} candidates (vs the policy's query alone)${side === 'enforce' ? ', rolled back' : ''}`,
        ours: fmtSeconds(t.medians[side]),
        baseline: fmtSeconds(t.medians.query),
        ratio: fmtRatio(t.medians[side] / t.medians.query),
        goal: side === 'preview' ? '<= 2 s at scale 1' : 'reported',
        verdict: side === 'preview' && r.options.scale >= 1 ? verdict(t.medians.preview <= 2) : 'info',
      });
  }
  return rows;
}

/** Time per subject must stay flat: the largest run against the second smallest (the smallest carries the fixed cost of a call). */
export const SCALING_FLAT = 1.25;

function scalingRows(x: ScalingResult): SummaryRow[] {
  const pts = x.points;
  if (pts.length < 2) return [];
  const base = pts[Math.min(1, pts.length - 1)]!;
  const last = pts[pts.length - 1]!;
  return (['eraseSeconds', 'requestSeconds'] as const).map((k) => {
    const growth = last[k] / last.subjects / (base[k] / base.subjects);
    return {
      item: '11',
      measure: `${k === 'eraseSeconds' ? 'pii.erase_subjects' : 'request + chunks + finish'}: time per subject at ${pts.map((p) => fmtInt(p.subjects)).join(' / ')} subjects`,
      ours: pts.map((p) => fmtMs(p[k] / p.subjects)).join(' / '),
      baseline: '-',
      ratio: fmtRatio(growth),
      goal: `flat: <= ${SCALING_FLAT.toFixed(2)}x (${fmtInt(last.subjects)} vs ${fmtInt(base.subjects)})`,
      verdict: verdict(growth <= SCALING_FLAT),
    };
  });
}

function vaultRows(v: VaultResult): SummaryRow[] {
  const perSecond = v.tokenized / v.tokenizeMedian;
  const detok = v.detokenizeMedian / v.lookupFloorMedian;
  const shred = v.withShreddingMedian / v.withoutShreddingMedian;
  return [
    {
      item: '8',
      measure: `pii.tokenize_many of ${fmtInt(v.tokenized)} values in one statement`,
      ours: `${fmtInt(perSecond)} values/s`,
      // Older saved results have no floor.
      baseline: v.tokenizeFloorMedian ? `${fmtInt(v.tokenized / v.tokenizeFloorMedian)} values/s` : '-',
      ratio: v.tokenizeFloorMedian ? fmtRatio(v.tokenizeMedian / v.tokenizeFloorMedian) : '-',
      goal: '>= 50,000 values/s',
      verdict: verdict(perSecond >= 50_000),
    },
    {
      item: '8',
      measure: `pii.detokenize of ${fmtInt(v.detokenizeTokens)} tokens vs the lookup-only join`,
      ours: fmtMs(v.detokenizeMedian),
      baseline: fmtMs(v.lookupFloorMedian),
      ratio: fmtRatio(detok),
      goal: '<= 1.30x time, <= 250 ms',
      verdict: verdict(detok <= 1.3 && v.detokenizeMedian <= 0.25),
    },
    {
      item: '8',
      measure: `PII API bulk lookup, ${fmtInt(v.http.tokensPerRequest)} tokens a request, p50 / p95 (${v.http.requests} requests)`,
      ours: `${fmtMs(v.http.p50)} / ${fmtMs(v.http.p95)}`,
      baseline: '-',
      ratio: '-',
      goal: `reported (${fmtInt(v.http.tokensPerSecond)} tokens/s)`,
      verdict: 'info',
    },
    {
      item: '8',
      measure: `erasure of ${fmtInt(v.shredSubjects)} subjects with vault shredding vs without`,
      ours: fmtSeconds(v.withShreddingMedian),
      baseline: fmtSeconds(v.withoutShreddingMedian),
      ratio: fmtRatio(shred),
      goal: '<= 1.05x time',
      verdict: verdict(shred <= 1.05),
    },
  ];
}

/** The summary as a fixed-width text table for stdout. */
export function textTable(rows: SummaryRow[]): string {
  const cols: Array<keyof SummaryRow> = ['item', 'measure', 'ours', 'baseline', 'ratio', 'goal', 'verdict'];
  const head: Record<keyof SummaryRow, string> = {
    item: '#',
    measure: 'measure',
    ours: 'ours',
    baseline: 'baseline',
    ratio: 'ratio',
    goal: 'goal',
    verdict: 'verdict',
  };
  const all = [head as unknown as SummaryRow, ...rows];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(...all.map((r) => String(r[c]).length))])) as Record<
    keyof SummaryRow,
    number
  >;
  const line = (r: SummaryRow) =>
    cols
      .map((c) => String(r[c]).padEnd(width[c]))
      .join('  ')
      .trimEnd();
  return [line(all[0]!), cols.map((c) => '-'.repeat(width[c])).join('  '), ...rows.map(line)].join('\n');
}
