// How a request's status reads in a terminal.
import type { RequestStatus } from '../sql/requestStatus.js';
import { keyValues, percent, tableCounts } from './output.js';

export function renderStatus(s: RequestStatus): string {
  const rows: Array<readonly [string, string | number | Date | null]> = [
    ['request', s.id],
    ['status', s.status],
    ['mode', s.mode],
    ['kind', s.kind],
    ['source', s.source],
    ['subjects', s.total],
    ['matched', s.matched],
    ['unmatched', s.unmatched],
    ['duplicates', s.duplicates],
    ['erased', s.erased],
    ['failed', s.failed],
    ['progress', percent(s.progress)],
    ['requested at', s.requestedAt],
    ['started at', s.startedAt],
    ['finished at', s.finishedAt],
    ['due at', s.dueAt],
    ['verified at', s.verifiedAt],
    ['residual traces', s.residualCount],
  ];
  if (s.error) rows.push(['error', s.error]);
  let out = keyValues(rows);
  if (Object.keys(s.rowsAffected).length > 0) out += tableCounts('rows changed', s.rowsAffected);
  if (Object.keys(s.sharedKept).length > 0) out += tableCounts('shared rows kept', s.sharedKept);
  return out;
}

export function progressLabel(s: RequestStatus): string {
  return `${s.status}: ${s.erased + s.failed}/${s.total} subjects`;
}
