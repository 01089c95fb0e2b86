/**
 * Architecture rules, checked by `npm run lint:deps` (CI) and by test/architecture.test.ts:
 * no import cycle among runtime imports (`import type` does not count: they vanish at
 * compile time), the model's state depends on nothing that runs it, and the benchmarks
 * (bench/) sit beside the library: they use its public API and one internal entry, and
 * only the `moe bench` command imports them.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A runtime import cycle: modules that need each other cannot be changed or loaded apart.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'state-is-data',
      severity: 'error',
      comment: "The model's state (src/model) imports nothing from the code that trains, runs, stores or measures it.",
      from: { path: '^src/model/' },
      to: { path: '^(src/(train|parallel|engine|io|cli|reproduce|mixture)|bench/)' },
    },
    {
      name: 'bench-uses-the-api',
      severity: 'error',
      comment: 'The benchmarks (bench/) use the public API (src/index.ts) and the one internal entry (src/internal.ts), nothing else of src/ (their tests may drive the CLI).',
      from: { path: '^bench/', pathNot: '^bench/test/' },
      to: { path: '^src/', pathNot: '^src/(index|internal)\\.ts$' },
    },
    {
      name: 'library-ships-only-itself',
      severity: 'error',
      comment: 'The library does not import the benchmarks; only the CLI command `moe bench` (src/cli/bench-command.ts) does.',
      from: { path: '^(src|workers)/', pathNot: '^src/cli/bench-command\\.ts$' },
      to: { path: '^bench/' },
    },
    {
      name: 'tests-are-not-in-the-product',
      severity: 'error',
      comment: 'Nothing shipped imports a test or a test helper.',
      from: { path: '^(src|workers|bench)/', pathNot: '^bench/test/' },
      to: { path: '^(test|bench/test)/' },
    },
    {
      name: 'workers-are-thin',
      severity: 'error',
      comment: 'Worker entry files only wire a task to src/parallel.',
      from: { path: '^workers/' },
      to: { path: '^src/', pathNot: '^src/(parallel/shard\\.ts|reproduce/run\\.ts)$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    // Type-only imports are erased at compile time: they cannot form a runtime cycle.
    tsPreCompilationDeps: false,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
