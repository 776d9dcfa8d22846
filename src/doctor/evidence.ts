// Is Lethe's own evidence sound? The audit and ledger hash chains, erasures that never
// reached the ledger, and the ledger's copy outside the database (lethe worker --ledger-dir).
import { dbOnClient } from '../sql/db.js';
import { ledgerStatus } from '../sql/ledgerStatus.js';
import { verifyAuditChain } from '../sql/verifyAuditChain.js';
import type pg from 'pg';
import type { DoctorCheck } from './doctor.js';

/** Entries not copied for longer than this mean the copy is stuck (the worker copies every few seconds). */
const STALE_MS = 10 * 60_000;

export async function evidenceChecks(client: pg.Client): Promise<DoctorCheck[]> {
  const db = dbOnClient(client);
  const chains = await verifyAuditChain(db);
  const ledger = await ledgerStatus(db);
  const fail = (detail: string, fix: string): DoctorCheck => ({ check: 'evidence', status: 'fail', detail, fix });
  const checks = chains.map((c) =>
    fail(
      `${c.chain} chain: ${c.problem}${c.seq === null ? '' : ` (entry ${c.seq})`}`,
      'restore the audit trail from a backup or the ledger copy; see docs/backups.md',
    ),
  );
  if (ledger.unledgered > 0)
    checks.push(
      fail(
        `${ledger.unledgered} erasure(s) never reached pii.erasure_ledger (pii_internal.erasure_ledger_pending)`,
        'report it: this is a defect of Lethe',
      ),
    );
  if (ledger.lastError)
    checks.push(fail(`ledger copy: ${ledger.lastError}`, 'check the ledger directory of lethe worker'));
  // Not copying at all is a choice (a warning on every run); a copy that fails or stalls fails.
  if (ledger.target === null && ledger.ledgerSeq > 0)
    checks.push({
      check: 'evidence',
      status: 'warn',
      detail: 'the erasure ledger is not copied outside the database: a restored backup cannot be checked',
      fix: 'run lethe worker --ledger-dir DIR (docs/backups.md)',
    });
  if (ledger.oldestUnexportedAt && Date.now() - ledger.oldestUnexportedAt.getTime() > STALE_MS)
    checks.push(
      fail(
        `ledger copy: ${ledger.unexported} entr${ledger.unexported === 1 ? 'y' : 'ies'} not copied since ${ledger.oldestUnexportedAt.toISOString()}`,
        'is lethe worker --ledger-dir running?',
      ),
    );
  if (checks.length > 0) return checks;
  return [
    {
      check: 'evidence',
      status: 'ok',
      detail: `audit and ledger chains intact; ${ledger.exportedSeq} of ${ledger.ledgerSeq} ledger entries copied to ${ledger.target ?? '(nowhere yet)'}`,
    },
  ];
}
