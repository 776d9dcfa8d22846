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

/** SQLSTATEs of a chunk that lost a race (serialization failure, deadlock): its transaction rolled back whole. */
const TRANSIENT = new Set(['40001', '40P01']);
const CHUNK_TRIES = 5;

/** Thrown between chunks when the worker is shutting down; the job is retried on the next start. */
export class ShutdownInterruption extends Error {
  override readonly name = 'ShutdownInterruption';
}

export interface ProcessRequestOptions {
  chunkSize?: number;
  /**
   * Chunks processed at once, each its own transaction on its own connection: those of one
   * request side by side (claims use SKIP LOCKED, so they take different items), and at
   * most this many in all when several requests run. Default 1.
   */
  parallelChunks?: number;
}

export function processRequestTask(db: LetheDb, opts: ProcessRequestOptions = {}): Task {
  const parallel = opts.parallelChunks ?? 1;
  // Shared by every request job of this worker: with two requests open, graphile-worker
  // runs both jobs (concurrency 2), and each would run its own two chunk loops, four chunk
  // transactions on two cores and on a pool sized for two. A loop waits here for a slot.
  const slots = new Slots(parallel);
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
          const n = await slots.run(() => {
            // Checked once the slot is ours: a loop may have waited for it through a stop.
            if (helpers.abortSignal?.aborted) {
              throw new ShutdownInterruption(
                `worker shutting down after ${processed} item(s); the request resumes on the next start`,
              );
            }
            return chunkWithRetry(db, requestId, opts.chunkSize, (m) => helpers.logger.warn(m));
          });
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

/**
 * One chunk, run again at once (after a short pause) when it lost a race: the chunk is one
 * transaction, so a serialization failure or deadlock rolled all of it back and nothing
 * was counted; waiting for graphile-worker's next attempt would cost an attempt and seconds.
 */
async function chunkWithRetry(
  db: LetheDb,
  requestId: string,
  chunkSize: number | undefined,
  warn: (message: string) => void,
): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await processRequestChunk(db, requestId, chunkSize);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code !== 'string' || !TRANSIENT.has(code) || attempt >= CHUNK_TRIES) throw err;
      warn(
        `request ${requestId}: chunk rolled back (SQLSTATE ${code}), running it again (try ${attempt + 1} of ${CHUNK_TRIES})`,
      );
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

/** At most n callers at once; the others wait in arrival order. */
class Slots {
  private readonly waiting: (() => void)[] = [];
  constructor(private free: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}
