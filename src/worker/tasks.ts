// Lethe's graphile-worker task list. erasure_completed (queued by pii.finish_request) is
// deliberately not handled here: it is the hook for the application's own worker
// (purge caches, downstream copies); pass a handler to runWorker({ tasks }) to run it here.
import type { TaskList } from 'graphile-worker';
import type { LetheDb } from '../sql/db.js';
import { PROCESS_REQUEST_TASK, type ProcessRequestOptions, processRequestTask } from './processRequest.js';
import { ENFORCE_RETENTION_TASK, enforceRetentionTask, HOLD_TICK_TASK, holdTickTask } from './retention.js';

export const ERASURE_COMPLETED_TASK = 'erasure_completed';

export interface ErasureCompletedPayload {
  requestId: string;
  status: 'done' | 'failed';
  total: number;
  matched: number;
  erased: number;
  failed: number;
  residuals: number | null;
}

export function letheTasks(db: LetheDb, opts: ProcessRequestOptions = {}): TaskList {
  return {
    [PROCESS_REQUEST_TASK]: processRequestTask(db, opts),
    [ENFORCE_RETENTION_TASK]: enforceRetentionTask(db),
    [HOLD_TICK_TASK]: holdTickTask(db),
  };
}
