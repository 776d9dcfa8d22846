import type { Command } from 'commander';
import { resolveDatabaseUrl } from '../db/databaseUrl.js';
import { action, EXIT, globals, UsageError } from './context.js';
import { printJson } from './output.js';

export function addDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('end-to-end demo on a throwaway embedded PostgreSQL (or a scratch database on --database-url)')
    .option('--scale <n>', 'CRM size: 0.01 = 10,000 customers', '0.01')
    .action(
      action(async (opts: { scale: string }, cmd: Command) => {
        // Loaded on use: graphile-worker and the demo's modules slow every other command's start.
        const { runDemo } = await import('../demo/runDemo.js');
        const json = globals(cmd).json;
        const scale = Number(opts.scale);
        if (!(scale > 0 && scale <= 1)) throw new UsageError(`--scale must be a number in (0, 1], got "${opts.scale}"`);
        const result = await runDemo({
          serverUrl: resolveDatabaseUrl(globals(cmd).databaseUrl),
          scale,
          out: json ? () => {} : undefined,
        });
        if (json) printJson(result);
        return result.status === 'done' && result.verified ? EXIT.ok : EXIT.failure;
      }),
    );
}
