// Lethe's public TypeScript API.
//   const lethe = createLethe({ connectionString: process.env.DATABASE_URL! });
//   const id = await lethe.requestErasure(['42'], { requestKey: 'ticket-1812' });
//   const worker = await runWorker({ connectionString, concurrency: 2 });
// The src/sql functions take any Kysely<DB> (or transaction), so a request can be made
// inside the application's own transaction: requestErasure(trx, ['42']).
export { createLethe, type Lethe, type LetheOptions, type Verification, type WaitOptions } from './createLethe.js';
export { runWorker, type LetheWorker, type RunWorkerOptions } from '../worker/runWorker.js';
export { ERASURE_COMPLETED_TASK, type ErasureCompletedPayload } from '../worker/tasks.js';
export { PROCESS_REQUEST_TASK } from '../worker/processRequest.js';
export { LetheError, SqlState } from '../sql/errors.js';
export { createDb, type LetheDb, type ServerNotice } from '../sql/db.js';
export { requestErasure, type ErasureMode, type RequestErasureOptions } from '../sql/requestErasure.js';
export { requestStatus, type RequestState, type RequestStatus } from '../sql/requestStatus.js';
export { requestItems, type RequestItem, type RequestItemsFilter } from '../sql/requestItems.js';
export { verifyErasure, type Residual } from '../sql/verifyErasure.js';
export { wasErased, wasErasedHash, type WasErased } from '../sql/wasErased.js';
export { tokenizeMany, type TokenizeInput, type TokenizeOptions } from '../sql/tokenizeMany.js';
export { detokenize, type Detokenized, type TokenStatus } from '../sql/detokenize.js';
export { initKeyStore, type KeyStore, PostgresKeyStore } from '../vault/keyStore.js';
export { KeyStoreVault } from '../vault/keyStoreVault.js';
export { useKeyStore } from '../sql/useKeyStore.js';
export { importCsv, CsvRejectedError, type ImportCsvOptions, type ImportReport } from '../csv/importCsv.js';
export type { RowError } from '../csv/format.js';
export type { AuditRow, AuditFilter } from '../sql/audit.js';
export type { LintProblem } from '../sql/lint.js';
export type { RegisteredColumn, RegisteredTable } from '../sql/registry.js';
export type { DB } from '../db/types.js';
export { setRetentionPolicy, type RetentionPolicyOptions, type RetentionSchedule } from '../sql/setRetentionPolicy.js';
export { approveRetention } from '../sql/approveRetention.js';
export { previewRetention, type RetentionPreview } from '../sql/previewRetention.js';
export { enforceRetention, type RetentionOutcome, type RetentionRun } from '../sql/enforceRetention.js';
export { retentionPolicies, type RetentionPolicy } from '../sql/retentionPolicies.js';
export { retentionHistory, type RetentionHistoryRow } from '../sql/retentionHistory.js';
export {
  requestErasureFromQuery,
  type QueryErasure,
  type QueryErasureOptions,
} from '../sql/requestErasureFromQuery.js';
export { LETHE_CRONTAB, ENFORCE_RETENTION_TASK, HOLD_TICK_TASK } from '../worker/retention.js';
