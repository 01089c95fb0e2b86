/**
 * The package as users import it, by name: `import 'local-experts'` and
 * `require('local-experts')` (require of an ES module, Node ≥ 20.19) resolve through the
 * exports map to dist/ and give the same names as src/index.ts; the shipped declarations
 * declare exactly those values; and a CommonJS program trains with worker threads and
 * exits by itself. Child processes use this runtime (process.execPath), so the Node
 * matrix tests each version's loader. Reads the build in dist/: run `npm run build` first.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const names = Object.keys(api).sort();

/** Run a snippet in a child Node with the repo as working directory (so the package resolves to itself); its stdout. */
function node(inputType: 'module' | 'commonjs', code: string, timeout = 30_000): string {
  return execFileSync(process.execPath, [`--input-type=${inputType}`, '-e', code], { cwd: root, encoding: 'utf8', timeout });
}

/**
 * The public API, pinned: a name added to or removed from src/index.ts fails here until
 * this list is changed with it, on purpose (internals such as the step, the pools or the
 * memory layout must not leak out by accident).
 */
const PUBLIC_VALUES = [
  'ACTIVATIONS', 'BACKENDS', 'BackendError', 'DataError', 'LOSSES', 'MODEL_FORMAT', 'MODEL_FORMAT_VERSION', 'Mixture',
  'ModelFormatError', 'MoeError', 'OPTIMIZERS', 'OptionError', 'PAPER_VOWELS',
  'Rng', 'ShardCrashError', 'ShardStallError', 'cosineDecay', 'datasetFromArrays', 'loadCsv',
  'loadVowels', 'splitRows', 'stepDecay', 'subset', 'validateDataset',
  // Metrics (scikit-learn's names, camelCase).
  'LOG_LOSS_EPS', 'LOG_LOSS_SUM_TOLERANCE', 'accuracyScore', 'confusionMatrix', 'logLoss', 'meanAbsoluteError', 'meanBaselineScores',
  'meanSquaredError', 'precisionScore', 'r2Score', 'recallScore', 'regressionScores', 'rootMeanSquaredError',
  // The float mode.
  'DENORMAL_MODES', 'FLUSH_PLATFORMS',
];

describe('package entry point', () => {
  it('exports exactly the pinned public names', () => {
    expect(names).toEqual([...PUBLIC_VALUES].sort());
  });

  it('exports the same names through import by name as src/index.ts', () => {
    const out = node('module', `import * as m from 'local-experts'; console.log(JSON.stringify(Object.keys(m).sort()));`);
    expect(JSON.parse(out)).toEqual(names);
    expect(names).toEqual(expect.arrayContaining(['Mixture', 'loadVowels', 'loadCsv', 'MoeError']));
  });

  it('exports the same names through require()', () => {
    const out = node('commonjs', `console.log(JSON.stringify(Object.keys(require('local-experts')).sort()));`);
    expect(JSON.parse(out)).toEqual(names);
  });

  it('declares in dist/src/index.d.ts exactly the values it exports', () => {
    const file = join(root, 'dist/src/index.d.ts');
    const program = ts.createProgram([file], { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, noEmit: true, skipLibCheck: true, types: ['node'] });
    const checker = program.getTypeChecker();
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(file)!)!;
    const values = checker
      .getExportsOfModule(moduleSymbol)
      .filter((s) => {
        const target = s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s;
        return (target.flags & ts.SymbolFlags.Value) !== 0;
      })
      .map((s) => s.name)
      .sort();
    expect(values).toEqual(names);
  });

  it('trains from CommonJS with worker threads, and the process exits by itself', () => {
    const code = `
      const { Mixture, loadVowels } = require('local-experts');
      (async () => {
        const { train } = await loadVowels({ seed: 1 });
        const m = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 2, seed: 1 });
        const r = await m.fit(train, { epochs: 2, workers: 2 });
        await m.close();
        console.log(JSON.stringify({ workers: r.workers, epochs: r.epochs, loss: r.finalLoss }));
      })().catch((e) => { console.error(e); process.exit(1); });`;
    // A thread left running would keep the child alive until the timeout kills it.
    const result = JSON.parse(node('commonjs', code, 45_000)) as { workers: number; epochs: number; loss: number };
    expect(result.workers).toBe(2);
    expect(result.epochs).toBe(2);
    expect(Number.isFinite(result.loss)).toBe(true);
  });
});
