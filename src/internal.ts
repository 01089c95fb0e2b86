/**
 * The one internal entry: what the benchmarks in the top-level `bench/` folder need from
 * the library beyond its public API (src/index.ts): the training session and its step, the
 * shared-memory layout the timing wrappers read, the kernel sets, the provider loader and
 * the interpreter finder of the PyTorch peer, and the MPI communicator with its counters.
 *
 * NOT public API and not under semver: the package's `exports` map does not name it, so a
 * user of the package cannot import it; it changes with the library's internals. Only
 * `bench/` (and the library's own tests) import it; the dependency rules check that
 * `bench/` imports nothing else from `src/` (.dependency-cruiser.cjs).
 */
export { TrainingSession } from './train/session.js';
export type { SessionOptions } from './train/session.js';
export { trainingData } from './train/data.js';
export type { TrainingData } from './engine/step.js';
export type { ShardRunner } from './engine/runner.js';
export type { ThreadRunner } from './parallel/thread-runner.js';
export { checkWorkerCount } from './engine/plan.js';
export { BUSY_SLOTS, CMD, CTRL } from './memory/layout.js';
export { expertShape, gateShape } from './model/config.js';
export { mlpParamCount } from './model/mlp.js';
export { resolveRouting } from './model/routing.js';
export { fitStandardizer, identityStandardizer } from './data/standardize.js';
export { kernelSetFromEnv } from './kernels/index.js';
export { jsKernels } from './kernels/js.js';
export { wasmKernels } from './kernels/wasm.js';
export { wasmApi } from './kernels/wasm-api.js';
export type { WasmMemory } from './kernels/wasm-api.js';
export type { Kernels } from './kernels/types.js';
export { loadExactProvider } from './compute/load.js';
export { findTorchPython } from './python/find-torch.js';
export type { TorchPython } from './python/find-torch.js';
export { median } from './reproduce/stats.js';
export { machineInfo, machineText } from './reproduce/machine.js';
// MPI (`moe bench scaling --mpi`): the world communicator and its exchange counters, and
// what each error function needs exchanged.
export { Communicator } from './mpi/communicator.js';
export type { ExchangeCounters } from './mpi/communicator.js';
export { errorFunction } from './losses/index.js';
