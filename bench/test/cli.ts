// Shared by the benchmark tests: run `moe bench …` in-process and check numbers' form.
import { vi } from 'vitest';
import { benchCommand } from '../../src/cli/bench-command.js';
import { configureTree } from '../../src/cli/common.js';

/** A finite number > 0 (benchmark numbers depend on the machine; only their form is checked). */
export function positiveFinite(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v > 0;
}

/** Run the bench CLI with stdout/stderr captured; resolves to what it printed on stdout. */
export async function benchCli(args: string[]): Promise<string> {
  let out = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    // As main does: commander throws instead of exiting and prints nothing itself.
    const cmd = benchCommand();
    configureTree(cmd);
    await cmd.parseAsync(['node', 'moe', ...args]);
  } finally {
    vi.restoreAllMocks();
  }
  return out;
}
