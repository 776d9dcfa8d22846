// `npm run build` (run by prepack): dist/ from scratch, tsc's JavaScript and declarations
// (tsconfig.build.json), plus the SQL files modules under src read next to themselves
// (src/demo/crm/*.sql), which tsc does not copy.
import { execFileSync } from 'node:child_process';
import { cpSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';

rmSync('dist', { recursive: true, force: true });
execFileSync(
  process.execPath,
  [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
  {
    stdio: 'inherit',
  },
);
cpSync('src', 'dist', { recursive: true, filter: (path) => statSync(path).isDirectory() || path.endsWith('.sql') });
