import type { Command } from 'commander';
import { action, EXIT, globals, withLethe } from './context.js';
import { print, printJson } from './output.js';

export function addGrantCommand(program: Command): void {
  program
    .command('grant')
    .description(
      'make a login role a member of a Lethe group role (pii_admin, pii_operator, pii_masked_reader, pii_auditor, pii_dispatcher)',
    )
    .argument('<group-role>', 'Lethe group role')
    .argument('<login-role>', 'existing login role')
    .action(
      action(async (groupRole: string, loginRole: string, _opts, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          await lethe.registry.grantRole(groupRole, loginRole);
          if (globals(cmd).json) printJson({ granted: groupRole, to: loginRole });
          else print(`granted ${groupRole} to ${loginRole}\n`);
          return EXIT.ok;
        }),
      ),
    );
}
