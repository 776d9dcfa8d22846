import type { Command } from 'commander';
import { action, EXIT, globals, withLethe } from './context.js';
import { print, printJson, table } from './output.js';

export function addLintCommand(program: Command): void {
  program
    .command('lint')
    .description('list registry problems (exit 1 when there is an error)')
    .action(
      action(async (_opts, cmd: Command) =>
        withLethe(cmd, async (lethe) => {
          const problems = await lethe.registry.lint();
          if (globals(cmd).json) printJson(problems);
          else if (problems.length === 0) print('no problems found\n');
          else
            print(
              table(
                problems,
                ['severity', 'table_name', 'column_name', 'problem', 'hint'],
                ['severity', 'table', 'column', 'problem', 'hint'],
              ),
            );
          return problems.some((p) => p.severity === 'error') ? EXIT.failure : EXIT.ok;
        }),
      ),
    );
}
