#!/usr/bin/env node
// The `moe` command. Tracked in git with its run bit, so that `npx moe` keeps working
// after every rebuild of dist/ (tsc writes dist/src/cli/main.js without one).
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('moe: error: the package is not built (no dist/src/cli/main.js): run `npm run build` in its directory\n');
  process.exit(70);
}
import(main.href).catch((err) => {
  process.stderr.write(`moe: error: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(70);
});
