// lethe erase <keys…> | --file keys.txt: one request for the keys. The keys are never
// echoed or logged; the output is the request id and counts.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { action, dueDate, EXIT, globals, modeOption, UsageError, withLethe } from './context.js';
import { print, printJson } from './output.js';
import { watchRequest } from './watch.js';
import { renderStatus } from './statusView.js';

interface EraseOptions {
  file?: string;
  scope?: string;
  requestKey?: string;
  mode?: string;
  due?: string;
  wait?: boolean;
}

export function addEraseCommand(program: Command): void {
  program
    .command('erase')
    .description('request erasure of subjects by key (queued; a worker processes it)')
    .argument('[keys...]', 'subject keys')
    .option('-f, --file <path>', 'read keys from a file, one per line ("-" for stdin)')
    .option('--scope <scope>', 'scope (brand) of every key, for scoped installs')
    .option('--request-key <key>', 'idempotency key: the same key returns the same request')
    .option('--mode <mode>', 'erase (per table on_erase) or delete (remove every registered row)')
    .option('--due <when>', 'deadline: ISO date/time or a delay such as 48h, 30d')
    .option('--wait', 'wait until the request is done (progress bar on a terminal)')
    .action(
      action(async (keys: string[], opts: EraseOptions, cmd: Command) => {
        const json = globals(cmd).json;
        const all = [...keys, ...(opts.file ? await readKeys(opts.file) : [])];
        if (all.length === 0) throw new UsageError('no subject keys: pass them as arguments or with --file');
        const mode = modeOption(opts.mode);
        const dueAt = dueDate(opts.due);
        return withLethe(cmd, async (lethe) => {
          const id = await lethe.requestErasure(all, {
            requestKey: opts.requestKey,
            source: 'cli',
            scopes: opts.scope === undefined ? undefined : [opts.scope],
            mode,
            dueAt,
          });
          const status = opts.wait ? await watchRequest(lethe, id, !json) : await lethe.getRequest(id);
          if (json) printJson(status);
          else print(renderStatus(status));
          return status.status === 'failed' ? EXIT.failure : EXIT.ok;
        });
      }),
    );
}

async function readKeys(path: string): Promise<string[]> {
  let text: string;
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
