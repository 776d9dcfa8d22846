// Task lethe_process_request {requestId}: chunk after chunk until nothing is pending (with
// parallelChunks, that many chunks at once), then finish (verify, set the status, announce). Each chunk is one SQL call and one
// transaction, so a crash loses at most the chunk in flight, which simply rolls back.
import type { Task } from 'graphile-worker';
import type { LetheDb } from '../sql/db.js';
import { failRequest } from '../sql/failRequest.js';
import { finishRequest } from '../sql/finishRequest.js';
import { processRequestChunk } from '../sql/processRequestChunk.js';
import { isRequestId } from '../sql/requestId.js';

export const PROCESS_REQUEST_TASK = 'lethe_process_request';

/** Thrown between chunks when the worker is shutting down; the job is retried on the next start. */
export class ShutdownInterruption extends Error {
  override readonly name = 'ShutdownInterruption';
}

export interface ProcessRequestOptions {
  chunkSize?: number;
  /**
   * Chunks of one request processed at once, each its own transaction on its own
   * connection (claims use SKIP LOCKED, so they take different items). Default 1.
   */
  parallelChunks?: number;
}

export function processRequestTask(db: LetheDb, opts: ProcessRequestOptions = {}): Task {
  const parallel = opts.parallelChunks ?? 1;
  return async (payload, helpers) => {
    const requestId = (payload as { requestId?: unknown } | null)?.requestId;
    if (!isRequestId(requestId)) {
      // A malformed payload can never succeed: fail at once instead of retrying 10 times.
      helpers.logger.error(`job ${helpers.job.id}: payload has no valid requestId; dropped`);
      return;
    }
    try {
      let processed = 0;
      const chunkLoop = async () => {
        for (;;) {
          if (helpers.abortSignal?.aborted) {
            throw new ShutdownInterruption(
              `worker shutting down after ${processed} item(s); the request resumes on the next start`,
            );
          }
          const n = await processRequestChunk(db, requestId, opts.chunkSize);
          if (n === 0) return;
          processed += n;
          helpers.logger.info(`request ${requestId}: ${processed} item(s) processed`);
        }
      };
      // Every loop ends (no chunk left in flight) before the job finishes or fails.
      const loops = await Promise.allSettled(Array.from({ length: parallel }, chunkLoop));
      const failed = loops.find((l): l is PromiseRejectedResult => l.status === 'rejected');
      if (failed) throw failed.reason;
      const status = await finishRequest(db, requestId);
      helpers.logger.info(`request ${requestId}: ${status} (${processed} item(s) in this run)`);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // graphile-worker counts this run in attempts already; on the last one record the
      // failure on the request, so it reads failed rather than running forever.
      const lastAttempt = helpers.job.attempts >= helpers.job.max_attempts;
      if (lastAttempt && !(err instanceof ShutdownInterruption)) {
        await failRequest(db, requestId, message).catch((e: unknown) =>
          helpers.logger.error(`request ${requestId}: could not record the failure: ${(e as Error).message}`),
        );
        helpers.logger.error(
          `request ${requestId}: failed for good after ${helpers.job.attempts} attempt(s): ${message}`,
        );
      }
      throw err;
    }
  };
}
