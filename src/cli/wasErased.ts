import type { Command } from 'commander';
import { action, EXIT, globals, UsageError, withLethe } from './context.js';
import { keyValues, print, printJson } from './output.js';

interface WasErasedOptions {
  scope?: string;
  hash?: boolean;
  kind?: string;
}

export function addWasErasedCommand(program: Command): void {
  program
    .command('was-erased')
    .description('was this subject erased? (answered from the keyed hash; the key is not stored)')
    .argument('<key>', 'subject key, or with --hash a subject hash from a report')
    .option('--scope <scope>', 'scope (brand) of the key, for scoped installs')
    .option('--kind <kind>', 'subject kind of the key (customer, staff); needed when the install has several')
    .option('--hash', 'the argument is a subject hash (64 hex characters), as shown in reports')
    .action(
      action(async (key: string, opts: WasErasedOptions, cmd: Command) => {
        if (opts.hash && !/^[0-9a-f]{64}$/i.test(key)) throw new UsageError('--hash expects 64 hexadecimal characters');
        if (opts.hash && opts.scope !== undefined)
          throw new UsageError('--scope does not apply to --hash (the hash includes it)');
        if (opts.hash && opts.kind !== undefined)
          throw new UsageError('--kind does not apply to --hash (the hash includes it)');
        return withLethe(cmd, async (lethe) => {
          const r = opts.hash
            ? await lethe.wasErasedHash(key.toLowerCase())
            : await lethe.wasErased(key, opts.scope, opts.kind);
          if (globals(cmd).json) printJson(r);
          else
            print(
              keyValues([
                ['erased', r.erased ? 'yes' : r.flaggedAt ? 'not yet (requested, pending)' : 'no'],
                ['flagged at', r.flaggedAt],
                ['erased at', r.erasedAt],
                ['request', r.requestId],
              ]),
            );
          return EXIT.ok;
        });
      }),
    );
}
