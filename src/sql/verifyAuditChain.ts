import { sql } from './kysely.js';
import type { LetheDb } from './db.js';
import { sqlCall } from './errors.js';

export interface ChainProblem {
  chain: 'audit' | 'erasure_ledger';
  /** The entry where the chain breaks (null: a row outside the chain). */
  seq: number | null;
  problem: string;
}

/** pii.verify_audit_chain: the first broken or missing link of each chain; empty means intact. */
export async function verifyAuditChain(db: LetheDb): Promise<ChainProblem[]> {
  return sqlCall(async () => {
    const { rows } = await sql<{
      chain: ChainProblem['chain'];
      seq: string | null;
      problem: string;
    }>`select * from pii.verify_audit_chain()`.execute(db);
    return rows.map((r) => ({ chain: r.chain, seq: r.seq === null ? null : Number(r.seq), problem: r.problem }));
  });
}
