#!/usr/bin/env node
// The `lethe` command. Lethe ships TypeScript sources; tsx (a runtime dependency)
// compiles them on the fly, so there is no build step to forget.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/index.ts');
