#!/usr/bin/env node
// `lethe` in a clone of the repository: the TypeScript sources through tsx (a devDependency),
// so there is no build step to forget. The published package's bin is dist/cli/index.js,
// compiled by `npm run build` (prepack).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/index.ts');
