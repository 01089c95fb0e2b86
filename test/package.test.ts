/**
 * What `npm pack` would publish: the files the library and the CLI need at run time and
 * nothing else (no sources, tests, results or source maps); every compiled module backed
 * by a source file (no stale output of a deleted one) and by its types; the entry points
 * package.json names inside the package; the CLI with its shebang; and no top-level await
 * anywhere, since require() of an ES module refuses one. Reads the build in dist/: run
 * `npm run build` first (`npm test` does).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain .mjs script without declarations
import { topLevelAwaits } from '../scripts/check-no-tla.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  engines: { node: string };
  exports: Record<string, string | Record<string, string>>;
};

/** Files outside dist/ that the package carries: the data the vowel loader reads, its provenance note, the README and licence, the PyTorch peer script. */
const OTHER_FILES = ['package.json', 'README.md', 'LICENSE', 'bin/moe.js', 'data/peterson-barney-1952.csv', 'data/README.md', 'python/torch_peer.py'];
const COMPILED = /^dist\/(src|workers|bench)\/.+\.(js|d\.ts)$/;
/** Built binaries the package carries: the WebAssembly kernels (`npm run build:kernels`). */
const BINARIES = ['dist/kernels/kernels.wasm'];

let packed: string[] = [];

beforeAll(() => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--loglevel=error'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const [report] = JSON.parse(out) as { files: { path: string }[] }[];
  packed = report!.files.map((f) => f.path).sort();
});

/** `./dist/src/index.js` → `dist/src/index.js`. */
const rel = (p: string): string => p.replace(/^\.\//, '');

describe('npm pack', () => {
  it('carries the compiled library, its types, the data and the notes, and nothing else', () => {
    const extra = packed.filter((p) => !OTHER_FILES.includes(p) && !BINARIES.includes(p) && !COMPILED.test(p));
    expect(extra).toEqual([]);
    for (const f of [...OTHER_FILES, ...BINARIES]) expect(packed, `${f} is not packed`).toContain(f);
  });

  it('packs output only for sources that exist, each with its declarations', () => {
    const js = packed.filter((p) => p.startsWith('dist/') && p.endsWith('.js'));
    expect(js.length).toBeGreaterThan(10);
    for (const p of js) {
      const source = p.replace(/^dist\//, '').replace(/\.js$/, '.ts');
      expect(existsSync(join(root, source)), `${p} has no ${source} (stale build output?)`).toBe(true);
      expect(packed, `${p} has no declarations`).toContain(p.replace(/\.js$/, '.d.ts'));
    }
  });

  it('packs the output of every source file', () => {
    const sources = ['src', 'workers', 'bench']
      .flatMap((dir) => readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' }).map((f) => `${dir}/${f.replaceAll('\\', '/')}`))
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.startsWith('bench/test/'));
    expect(sources.length).toBeGreaterThan(10);
    for (const s of sources) expect(packed, `${s} was not built or not packed`).toContain(`dist/${s.replace(/\.ts$/, '.js')}`);
  });

  it('ships the benchmarks the CLI runs, but not their tests or results', () => {
    expect(packed).toContain('dist/bench/peers.js');
    expect(packed.filter((p) => p.startsWith('dist/bench/test/') || p.startsWith('bench/'))).toEqual([]);
  });

  it('holds every entry point package.json names', () => {
    const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin)];
    for (const entry of Object.values(pkg.exports)) {
      if (typeof entry === 'string') targets.push(entry);
      else targets.push(...Object.values(entry));
    }
    for (const t of targets) expect(packed, `${t} is named in package.json but not packed`).toContain(rel(t));
    expect(packed).toContain('dist/workers/shard.js');
  });

  it('gives the CLI a shebang, so that npm can link it as `moe`', () => {
    expect(Object.keys(pkg.bin)).toContain('moe');
    const main = readFileSync(join(root, rel(pkg.bin.moe!)), 'utf8');
    expect(main.split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('links `moe` to a launcher tracked in git with its run bit, so that a rebuild of dist/ cannot take it away', () => {
    expect(pkg.bin.moe).toBe('bin/moe.js');
    // git keeps the mode of a tracked file: 100755 is executable in every clone and git install.
    const staged = execFileSync('git', ['ls-files', '-s', 'bin/moe.js'], { cwd: root, encoding: 'utf8' });
    expect(staged.slice(0, 6)).toBe('100755');
    expect(readFileSync(join(root, 'bin/moe.js'), 'utf8')).toContain("'../dist/src/cli/main.js'");
    // npx moe runs it directly; after a rebuild it still prints the version.
    const version = execFileSync(join(root, 'bin/moe.js'), ['--version'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(version.trim()).toBe((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('builds on prepare, so that a git install (and npm ci) gets dist/', () => {
    const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts['prepare']).toMatch(/npm run build/);
  });

  it('has no source maps and no top-level await in any packed module', () => {
    const hits: string[] = [];
    for (const p of packed.filter((f) => f.endsWith('.js'))) {
      const file = join(root, p);
      if (/^\/\/# sourceMappingURL=/m.test(readFileSync(file, 'utf8'))) hits.push(`${p}: sourceMappingURL`);
      for (const h of topLevelAwaits(file) as string[]) hits.push(`${p}:${h}`);
    }
    expect(hits).toEqual([]);
  });

  it('declares a Node range that includes require(esm), and this runtime is in it', () => {
    const m = /^>=(\d+)\.(\d+)\.(\d+)$/.exec(pkg.engines.node);
    expect(m, `engines.node ${pkg.engines.node}`).not.toBeNull();
    const want = m!.slice(1).map(Number);
    // require() of ES modules without a flag: Node 20.19 and 22.12 onwards.
    expect(want[0]! > 20 || (want[0] === 20 && want[1]! >= 19)).toBe(true);
    const have = process.versions.node.split('.').map(Number);
    const cmp = have[0]! - want[0]! || have[1]! - want[1]! || have[2]! - want[2]!;
    expect(cmp, `Node ${process.versions.node} is outside engines ${pkg.engines.node}`).toBeGreaterThanOrEqual(0);
  });
});
