/**
 * Architecture rules, checked by `npm run lint:deps` (CI) and by test/architecture.test.ts:
 * no import cycle among runtime imports (`import type` does not count: they vanish at
 * compile time), and the model's state depends on nothing that runs it.
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
      to: { path: '^src/(train|parallel|engine|io|bench|cli|reproduce|mixture)' },
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
