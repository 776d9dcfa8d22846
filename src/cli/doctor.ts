// lethe doctor: is Lethe's own evidence sound? The audit and ledger hash chains, erasures
// that never reached the ledger, and the ledger's copy outside the database. Exit 1 on any
// problem, so a monitoring job can run it.
import type { Command } from 'commander';
import { ledgerStatus } from '../sql/ledgerStatus.js';
import { verifyAuditChain } from '../sql/verifyAuditChain.js';
import { action, EXIT, globals, withLethe } from './context.js';
import { print, printJson } from './output.js';

/** Entries not copied for longer than this mean the copy is stuck (the worker copies every few seconds). */
const STALE_MS = 10 * 60_000;

export function addDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description("check Lethe's evidence: audit and ledger hash chains, the ledger's copy outside the database")
    .action(
      action(async (_opts, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const chains = await verifyAuditChain(lethe.db);
          const ledger = await ledgerStatus(lethe.db);
          const problems = chains.map(
            (c) => `${c.chain} chain: ${c.problem}${c.seq === null ? '' : ` (entry ${c.seq})`}`,
          );
          if (ledger.unledgered > 0)
            problems.push(
              `${ledger.unledgered} erasure(s) never reached pii.erasure_ledger (pii_internal.erasure_ledger_pending)`,
            );
          if (ledger.lastError) problems.push(`ledger copy: ${ledger.lastError}`);
          if (ledger.target === null && ledger.ledgerSeq > 0)
            problems.push('the erasure ledger is not copied outside the database: run lethe worker --ledger-dir DIR');
          if (ledger.oldestUnexportedAt && Date.now() - ledger.oldestUnexportedAt.getTime() > STALE_MS)
            problems.push(
              `ledger copy: ${ledger.unexported} entr${ledger.unexported === 1 ? 'y' : 'ies'} not copied since ${ledger.oldestUnexportedAt.toISOString()}`,
            );
          if (globals(cmd).json) printJson({ ok: problems.length === 0, problems, chains, ledger });
          else if (problems.length === 0)
            print(
              `ok: audit and ledger chains intact; ${ledger.exportedSeq} of ${ledger.ledgerSeq} ledger entries copied to ${ledger.target ?? '(nowhere yet)'}\n`,
            );
          else print(problems.map((p) => `problem: ${p}\n`).join(''));
          return problems.length === 0 ? EXIT.ok : EXIT.failure;
        }),
      ),
    );
}
