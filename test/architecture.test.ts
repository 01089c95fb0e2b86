/**
 * The architecture's rules (.dependency-cruiser.cjs), checked on every test run: no
 * runtime import cycle anywhere in src/, workers/ or bench/, the model's state imports
 * nothing that trains or runs it, worker entries stay thin, the benchmarks use only the
 * public API and the one internal entry, and only the `moe bench` command imports them. The checker itself is checked too: a
 * cycle planted in a temporary tree must be reported.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const rules = createRequire(import.meta.url)(join(root, '.dependency-cruiser.cjs')) as { forbidden: unknown[]; options: Record<string, unknown> };

async function violations(dirs: string[], cwd: string, tsConfig?: string): Promise<string[]> {
  const previous = process.cwd();
  process.chdir(cwd);
  try {
    const options = { ...rules.options, ruleSet: { forbidden: rules.forbidden }, validate: true, ...(tsConfig ? {} : { tsConfig: undefined }) };
    const r = await cruise(dirs, options as never);
    const out = r.output as ICruiseResult;
    return out.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => c.name).join(' → ')})` : ''}`);
  } finally {
    process.chdir(previous);
  }
}

describe('architecture', () => {
  it('src/, workers/ and bench/ break no rule: no import cycle, state is data, thin workers, bench beside the library', async () => {
    expect(await violations(['src', 'workers', 'bench'], root, 'tsconfig.json')).toEqual([]);
  }, 60_000);

  it('reports a benchmark reaching past the two entries, and the library importing a benchmark', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-bench-rule-'));
    try {
      for (const d of ['src/train', 'src/cli', 'bench']) mkdirSync(join(dir, d), { recursive: true });
      writeFileSync(join(dir, 'src/train/session.ts'), 'export const s = 1;\n');
      writeFileSync(join(dir, 'src/internal.ts'), "export { s } from './train/session.js';\n");
      writeFileSync(join(dir, 'bench/ok.ts'), "import { s } from '../src/internal.js';\nexport const ok = s;\n");
      writeFileSync(join(dir, 'bench/deep.ts'), "import { s } from '../src/train/session.js';\nexport const deep = s;\n");
      writeFileSync(join(dir, 'src/cli/bench-command.ts'), "import { ok } from '../../bench/ok.js';\nexport const cmd = ok;\n");
      writeFileSync(join(dir, 'src/leak.ts'), "import { ok } from '../bench/ok.js';\nexport const leak = ok;\n");
      const found = await violations(['src', 'bench'], dir);
      expect(found.filter((v) => v.startsWith('bench-uses-the-api'))).toEqual(['bench-uses-the-api: bench/deep.ts → src/train/session.ts']);
      expect(found.filter((v) => v.startsWith('library-ships-only-itself'))).toEqual(['library-ships-only-itself: src/leak.ts → bench/ok.ts']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('the checker reports a runtime cycle, and ignores one made of `import type` only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'moe-cycle-'));
    try {
      writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = () => b;\n");
      writeFileSync(join(dir, 'b.ts'), "import { a } from './a.js';\nexport const b = () => a;\n");
      writeFileSync(join(dir, 'c.ts'), "import type { D } from './d.js';\nexport interface C { d?: D }\n");
      writeFileSync(join(dir, 'd.ts'), "import type { C } from './c.js';\nexport interface D { c?: C }\n");
      const found = await violations(['.'], dir);
      expect(found.filter((v) => v.startsWith('no-cycles')).length).toBeGreaterThan(0);
      expect(found.some((v) => v.includes('c.ts') || v.includes('d.ts'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
