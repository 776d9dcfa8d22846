import type { Lethe } from '../api/createLethe.js';
import type { RequestStatus } from '../sql/requestStatus.js';
import { progressBar } from './progressBar.js';
import { progressLabel } from './statusView.js';

/** Waits for a request to finish, with a live progress bar on a terminal. */
export async function watchRequest(lethe: Lethe, id: string, showBar: boolean): Promise<RequestStatus> {
  const bar = progressBar(showBar);
  try {
    return await lethe.waitForRequest(id, {
      onProgress: (s) => bar.update(s.progress, progressLabel(s)),
      maxIntervalMs: 500,
    });
  } finally {
    bar.done();
  }
}
