// lethe restore-check --ledger DIR: after restoring a backup, replay every erasure the
// external ledger holds that the database does not reflect. Exit 1 when some entries could
// not be checked (another HMAC secret, a ledger that diverged), so a restore script stops.
import type { Command } from 'commander';
import { readLedgerEntries } from '../ledger/ledgerDir.js';
import { restoreCheck } from '../sql/restoreCheck.js';
import { action, EXIT, globals, info, UsageError, withLethe } from './context.js';
import { keyValues, print, printJson } from './output.js';

export function addRestoreCheckCommand(program: Command): void {
  program
    .command('restore-check')
    .description('after a backup restore: re-erase every subject the external erasure ledger says is gone')
    .requiredOption('--ledger <dir>', 'the directory lethe worker --ledger-dir writes')
    .action(
      action(async (opts: { ledger: string }, cmd: Command) => {
        const entries = await readLedgerEntries(opts.ledger).catch((err: NodeJS.ErrnoException) => {
          if (err.code === 'ENOENT') throw new UsageError(`ledger directory ${opts.ledger} does not exist`);
          throw err;
        });
        if (entries.length === 0) throw new UsageError(`ledger directory ${opts.ledger} holds no ledger entries`);
        return withLethe(cmd, async (lethe) => {
          const r = await restoreCheck(lethe.db, entries);
          if (globals(cmd).json) printJson(r);
          else
            print(
              keyValues([
                ['ledger entries', r.ledgerEntries],
                ['copied back into the database', r.ledgerRestored],
                ['subjects', r.subjects],
                ['replayed (back, erased again)', r.replayed],
                ['already erased', r.alreadyErased],
                ['in progress (request open)', r.inProgress],
                ['returned (allowed back)', r.returned],
                ['not present', r.notPresent],
                ['indeterminate (other secret)', r.indeterminate],
                ['tombstones written', r.tombstonesWritten],
                ['replay requests', r.requestIds.join(', ') || 'none'],
              ]),
            );
          if (r.ledgerConflicts > 0)
            info(
              `restore-check: ${r.ledgerConflicts} ledger entries differ between ${opts.ledger} and the database ` +
                '(erasures ran on it before this check?): the ledger was not copied back; see docs/backups.md',
            );
          if (r.indeterminate > 0)
            info(
              `restore-check: ${r.indeterminate} subject(s) were hashed under another HMAC secret than this database's ` +
                '(rotated after the backup): they cannot be matched; see docs/backups.md, "Secret rotated after the backup"',
            );
          if (r.requestIds.length > 0)
            info(
              'restore-check: run lethe worker to process the replay request(s); the guards refuse these subjects now',
            );
          return r.ledgerConflicts > 0 || r.indeterminate > 0 ? EXIT.failure : EXIT.ok;
        });
      }),
    );
}
