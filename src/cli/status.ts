import type { Command } from 'commander';
import { action, EXIT, globals, positiveInt, requestIdArg, withLethe } from './context.js';
import { print, printJson, table } from './output.js';
import { renderStatus } from './statusView.js';
import { watchRequest } from './watch.js';

interface StatusOptions {
  watch?: boolean;
  items?: boolean;
  unmatched?: boolean;
  limit?: string;
}

export function addStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show a request: status, counts, progress, verification')
    .argument('<request-id>', 'request id (UUID)')
    .option('-w, --watch', 'follow the request with a live progress bar until it is done or failed')
    .option('--items', 'list its subjects (keyed hashes, CSV rows, matched, status)')
    .option('--unmatched', 'list only the subjects that matched nobody')
    .option('--limit <n>', 'at most n items', '1000')
    .action(
      action(async (idArg: string, opts: StatusOptions, cmd: Command) => {
        const id = requestIdArg(idArg);
        const json = globals(cmd).json;
        const limit = positiveInt('--limit', opts.limit);
        return withLethe(cmd, async (lethe) => {
          const status = opts.watch ? await watchRequest(lethe, id, !json) : await lethe.getRequest(id);
          const listItems = opts.items || opts.unmatched;
          const items = listItems
            ? await lethe.getRequestItems(id, { matched: opts.unmatched ? false : undefined, limit })
            : undefined;
          if (json) printJson(items ? { ...status, items } : status);
          else {
            print(renderStatus(status));
            if (items) {
              print('\n');
              print(
                table(
                  items.map((i) => ({ ...i, row: i.sourceRow })),
                  ['row', 'subjectHash', 'matched', 'status', 'erasedBy', 'error'],
                  ['row', 'subject hash', 'matched', 'status', 'erased by', 'error'],
                ),
              );
            }
          }
          // --watch answers "did it work": a failed request is a failure exit.
          return status.status === 'failed' ? EXIT.failure : EXIT.ok;
        });
      }),
    );
}
