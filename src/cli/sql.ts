import { createRequire } from 'node:module';
import type { Command } from 'commander';
import { action, EXIT } from './context.js';
import { print } from './output.js';

export function addSqlCommand(program: Command): void {
  program
    .command('sql')
    .description(
      'print the install script for psql (psql -v ON_ERROR_STOP=1 -f lethe.sql); upgrade later with lethe migrate',
    )
    .action(
      action(async () => {
        const { installScript } = await import('../db/installScript.js');
        const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };
        print(installScript(version));
        return EXIT.ok;
      }),
    );
}
