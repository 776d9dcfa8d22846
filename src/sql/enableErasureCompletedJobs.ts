import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { LetheError, sqlCall, SqlState } from './errors.js';

/**
 * Turns pii.settings.erasure_completed_jobs on, so that finished requests queue an
 * erasure_completed job (off by default: without a handler they would pile up).
 * 'enabled' when this call turned it on, 'already' when it was on, 'forbidden' when the
 * role may not change pii.settings (only Lethe's owner may).
 */
export async function enableErasureCompletedJobs(db: LetheDb): Promise<'enabled' | 'already' | 'forbidden'> {
  try {
    return await sqlCall(async () => {
      const { rows } = await sql<{ on: boolean }>`select erasure_completed_jobs as on from pii.settings`.execute(db);
      if (rows[0]?.on) return 'already';
      await sql`update pii.settings set erasure_completed_jobs = true`.execute(db);
      return 'enabled';
    });
  } catch (err) {
    if (err instanceof LetheError && err.code === SqlState.insufficientPrivilege) return 'forbidden';
    throw err;
  }
}
