import type { Command } from 'commander';
import { action, databaseUrl, EXIT, globals, info } from './context.js';
import { print, printJson } from './output.js';

export function addMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('install or upgrade Lethe (schema pii, graphile-worker) in the database')
    .action(
      action(async (_opts, cmd: Command) => {
        // Loaded on use: graphile-worker and the demo's modules slow every other command's start.
        const { migrate } = await import('../db/migrate.js');
        const json = globals(cmd).json;
        const { applied, code } = await migrate(databaseUrl(cmd), { log: json ? undefined : info });
        if (json) printJson({ applied, code });
        else if (applied.length === 0 && code.length === 0) print('already up to date\n');
        else print(`applied ${applied.length} migration(s) and ${code.length} code file(s)\n`);
        return EXIT.ok;
      }),
    );
}
