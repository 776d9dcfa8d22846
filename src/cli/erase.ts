// lethe erase <keys…> | --file keys.txt | --query <sql> --max N: one request for the keys
// (or the subjects the query selects). The keys are never echoed or logged; the output is
// the request id and counts.
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { Lethe } from '../api/createLethe.js';
import { requestErasureFromQuery } from '../sql/requestErasureFromQuery.js';
import { action, dueDate, EXIT, globals, modeOption, positiveInt, UsageError, withLethe } from './context.js';
import { keyValues, print, printJson, tableCounts } from './output.js';
import { watchRequest } from './watch.js';
import { renderStatus } from './statusView.js';

interface EraseOptions {
  file?: string;
  scope?: string;
  requestKey?: string;
  mode?: string;
  due?: string;
  wait?: boolean;
  query?: string;
  max?: string;
  dryRun?: boolean;
  kind?: string;
}

export function addEraseCommand(program: Command): void {
  program
    .command('erase')
    .description('request erasure of subjects by key (queued; a worker processes it)')
    .argument('[keys...]', 'subject keys')
    .option('-f, --file <path>', 'read keys from a file, one per line ("-" for stdin)')
    .option('--scope <scope>', 'scope (brand) of every key, for scoped installs')
    .option('--kind <kind>', 'subject kind of every key (customer, staff); needed when the install has several')
    .option('--request-key <key>', 'idempotency key: the same key returns the same request')
    .option('--mode <mode>', 'erase (per table on_erase) or delete (remove every registered row)')
    .option('--due <when>', 'deadline: ISO date/time or a delay such as 48h, 30d')
    .option('--wait', 'wait until the request is done (progress bar on a terminal)')
    .option(
      '--query <sql>',
      'erase the subjects this SELECT returns (a segment or list; run with your rights, read-only)',
    )
    .option('--max <n>', 'with --query: refuse when the query selects more subjects than this')
    .option('--dry-run', 'with --query: show how many subjects and rows would change; change nothing')
    .action(
      action(async (keys: string[], opts: EraseOptions, cmd: Command) => {
        const json = globals(cmd).json;
        if (opts.query !== undefined) return eraseByQuery(keys, opts, cmd);
        if (opts.max !== undefined || opts.dryRun) throw new UsageError('--max and --dry-run go with --query');
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
            kind: opts.kind,
          });
          return showRequest(lethe, id, opts.wait, json);
        });
      }),
    );
}

async function eraseByQuery(keys: string[], opts: EraseOptions, cmd: Command): Promise<number> {
  if (keys.length > 0 || opts.file) throw new UsageError('--query selects the subjects: pass no keys and no --file');
  const max = positiveInt('--max', opts.max);
  if (max === undefined) throw new UsageError('--query needs --max <n>: the most subjects it may erase');
  const mode = modeOption(opts.mode);
  return withLethe(cmd, async (lethe) => {
    const r = await requestErasureFromQuery(lethe.db, opts.query!, max, {
      requestKey: opts.requestKey,
      mode,
      dryRun: opts.dryRun,
      kind: opts.kind,
    });
    if (r.requestId !== null) return showRequest(lethe, r.requestId, opts.wait, globals(cmd).json);
    if (globals(cmd).json) printJson(r);
    else
      print(
        keyValues([['dry run: subjects', r.subjects]]) + tableCounts('rows that would change', r.rowsToChange ?? {}),
      );
    return EXIT.ok;
  });
}

async function showRequest(lethe: Lethe, id: string, wait?: boolean, json?: boolean): Promise<number> {
  const status = wait ? await watchRequest(lethe, id, !json) : await lethe.getRequest(id);
  if (json) printJson(status);
  else print(renderStatus(status));
  return status.status === 'failed' ? EXIT.failure : EXIT.ok;
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
