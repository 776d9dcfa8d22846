// The evidence pack of one request: who asked, when, the deadline, what changed per table
// and what verification found, with a SHA-256 so a copy can be checked later. Counts and
// role names only: no subject key, no keyed hash, no value.
import { createHash } from 'node:crypto';
import type { Lethe } from '../api/createLethe.js';
import { listRequests } from '../sql/listRequests.js';
import { isFinished } from '../sql/requestStatus.js';
import { LetheError, SqlState } from '../sql/errors.js';

export const EVIDENCE_FORMAT = 'lethe-evidence/1';

export interface EvidencePack {
  format: typeof EVIDENCE_FORMAT;
  generatedAt: string;
  generatedBy: string;
  request: {
    id: string;
    status: string;
    mode: string;
    source: string;
    requestedBy: string;
    requestedAt: string;
    dueAt: string;
    startedAt: string | null;
    finishedAt: string | null;
    metDeadline: boolean | null;
  };
  counts: { subjects: number; matched: number; unmatched: number; erased: number; failed: number; duplicates: number };
  rowsAffected: Record<string, number>;
  verification: {
    /** What the worker stored when the request finished. */
    storedAt: string | null;
    storedResidualCount: number | null;
    /** Checked again while building the pack (null while the request is still in progress). */
    checkedAt: string | null;
    residualsByTable: Record<string, number>;
    verified: boolean | null;
  };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export async function buildEvidencePack(lethe: Lethe, requestId: string, generatedBy: string): Promise<EvidencePack> {
  const [status, [summary]] = await Promise.all([
    lethe.getRequest(requestId),
    listRequests(lethe.db, { id: requestId, limit: 1 }),
  ]);
  if (!summary) throw new LetheError(`request ${requestId} does not exist`, SqlState.undefinedObject);
  const now = new Date();
  // pii.verify_erasure refuses (55000) while items are pending: nothing to check yet.
  const residuals = isFinished(status.status) ? (await lethe.verifyRequest(requestId)).residuals : undefined;
  const residualsByTable: Record<string, number> = {};
  for (const r of residuals ?? []) residualsByTable[r.tableName] = (residualsByTable[r.tableName] ?? 0) + 1;
  return {
    format: EVIDENCE_FORMAT,
    generatedAt: now.toISOString(),
    generatedBy,
    request: {
      id: status.id,
      status: status.status,
      mode: status.mode,
      source: status.source,
      requestedBy: summary.requestedBy,
      requestedAt: status.requestedAt.toISOString(),
      dueAt: status.dueAt.toISOString(),
      startedAt: iso(status.startedAt),
      finishedAt: iso(status.finishedAt),
      metDeadline: status.finishedAt ? status.finishedAt <= status.dueAt : null,
    },
    counts: {
      subjects: status.total,
      matched: status.matched,
      unmatched: status.unmatched,
      erased: status.erased,
      failed: status.failed,
      duplicates: status.duplicates,
    },
    rowsAffected: status.rowsAffected,
    verification: {
      storedAt: iso(status.verifiedAt),
      storedResidualCount: status.residualCount,
      checkedAt: residuals ? now.toISOString() : null,
      residualsByTable,
      verified: residuals ? residuals.length === 0 : null,
    },
  };
}

export function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/**
 * JSON: {"pack": …, "sha256": …}, the hash over the pack exactly as serialised
 * (JSON.stringify(file.pack) reproduces it: key order is kept).
 */
export function evidenceJson(pack: EvidencePack): string {
  const body = JSON.stringify(pack);
  return `{"pack":${body},"sha256":"${sha256(body)}"}\n`;
}

/** CSV: section,name,value lines; the last line is sha256,,<hex over every byte before it>. */
export function evidenceCsv(pack: EvidencePack): string {
  const rows: Array<[string, string, string | number | boolean | null]> = [
    ['pack', 'format', pack.format],
    ['pack', 'generated_at', pack.generatedAt],
    ['pack', 'generated_by', pack.generatedBy],
    ...Object.entries(pack.request).map(([k, v]) => ['request', snake(k), v] as [string, string, string | null]),
    ...Object.entries(pack.counts).map(([k, v]) => ['counts', snake(k), v] as [string, string, number]),
    ...Object.entries(pack.rowsAffected).map(([t, n]) => ['rows_affected', t, n] as [string, string, number]),
    ['verification', 'stored_at', pack.verification.storedAt],
    ['verification', 'stored_residual_count', pack.verification.storedResidualCount],
    ['verification', 'checked_at', pack.verification.checkedAt],
    ...Object.entries(pack.verification.residualsByTable).map(
      ([t, n]) => ['residuals', t, n] as [string, string, number],
    ),
    ['verification', 'verified', pack.verification.verified],
  ];
  const body = `section,name,value\n${rows.map((r) => r.map(csvCell).join(',')).join('\n')}\n`;
  return `${body}sha256,,${sha256(body)}\n`;
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function csvCell(v: string | number | boolean | null): string {
  const s = v === null ? '' : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
