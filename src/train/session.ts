/**
 * A training session: the threads and memory one fit owns. It lays out one shared kernel
 * memory for the model's parameters, gradients, optimiser state and every step's scratch,
 * copies the parameters in, starts the shard runner (in-process, or shard workers that
 * receive the memory itself), and at the end copies the parameters back into the model's
 * own memory and lets go of everything (the dataset included). A fit that validates gets
 * the predict path's inference engine in the same memory, on the same live parameters.
 */
import { errorFunction } from '../losses/index.js';
import type { Communicator } from '../mpi/communicator.js';
import { checkRankShards, MpiRunner } from '../mpi/mpi-runner.js';
import type { WasmMemory } from '../kernels/wasm-api.js';
import { FloatMode, type DenormalMode } from '../compute/float-mode.js';
import type { ComputeProvider } from '../compute/provider.js';
import { MixtureStep, type TrainingData } from '../engine/step.js';
import { denseSizes, shardExperts, sparseSizes } from '../engine/plan.js';
import { chunkRows, InferenceEngine } from '../engine/inference.js';
import { InProcessRunner, type ShardRunner } from '../engine/runner.js';
import { Router } from '../engine/routing.js';
import { routingRule, type RoutingRule } from '../engine/routing-plan.js';
import { Rng } from '../rng.js';
import { createKernels } from '../kernels/index.js';
import type { KernelSetName, Kernels } from '../kernels/types.js';
import { mapViews, planLayout, type MixtureLayout, type MixtureViews } from '../memory/layout.js';
import { allocateMemory } from '../memory/memory.js';
import { setParams, type MixtureParams, type ModelState } from '../model/state.js';
import { ThreadRunner } from '../parallel/thread-runner.js';

/** How a session is set up. */
export interface SessionOptions {
  /** Largest batch, in rows. */
  maxBatch: number;
  /** Worker threads (0 = in-process). */
  workers: number;
  /** The kernel set of every thread. */
  kernels: KernelSetName;
  /** Stall timeout of a parallel runner, ms (undefined: the runner's default). */
  stallTimeoutMs?: number | undefined;
  /** Shard worker entry (tests wrap the real one). */
  shardEntry?: string | undefined;
  /** Benchmarks: wrap the runner (to time its phases). */
  wrapRunner?: ((runner: ShardRunner, views: MixtureViews) => ShardRunner) | undefined;
  /** Benchmarks: wrap the main thread's kernels (to time them; in-process, the experts' too). */
  wrapKernels?: ((kernels: Kernels) => Kernels) | undefined;
  /**
   * Sparse routing: share a hot expert's blocks among shards to balance their rows
   * (default true), or keep every block with its expert's owner. Results are the same.
   */
  split?: boolean | undefined;
  /** Float mode of every thread that computes (default flush). */
  denormals?: DenormalMode | undefined;
  /** MPI: this process is one rank of the job; its experts are its share (see src/mpi). */
  mpi?: Communicator | undefined;
  /** Tests: a routing rule of their own instead of the configuration's (sparse layout). */
  rule?: RoutingRule | undefined;
  /**
   * Rows of the validation set, if the fit validates: the session then holds an inference
   * engine in its own memory, on its live parameters and kernels (see {@link TrainingSession.inference}).
   */
  validationRows?: number | undefined;
}

export class TrainingSession {
  private constructor(
    readonly memory: WasmMemory,
    readonly layout: MixtureLayout,
    readonly views: MixtureViews,
    readonly runner: ShardRunner,
    readonly step: MixtureStep,
    /** The routing rule, with its statistics. */
    readonly router: Router,
    /** Noisy top-k: the noise generator, whose state the model's training state records. */
    readonly noiseRng: Rng | undefined,
    /** MPI: this rank's runner (its exchanges and the gather of every rank's experts). */
    readonly mpi: MpiRunner | undefined,
    /** In-process: the runner, whose long phases yield between slices (the fit tells it when to stop). */
    readonly inProcess: InProcessRunner | undefined,
    /**
     * Validation's forward pass (where the session was started with validationRows): the
     * predict path's engine, its scratch after the layout in this session's memory, on
     * the session's kernels and live parameters. Run it between steps only (at a step
     * boundary every shard is idle and every expert's parameters are in this memory).
     */
    readonly inference: InferenceEngine | undefined,
  ) {}

  /**
   * Lay out the memory for `state` and `data`, copy the parameters in and start the runner.
   * Throws BackendError when the provider does not load in a worker (nothing is changed).
   */
  static async start(state: ModelState, provider: ComputeProvider, data: TrainingData, o: SessionOptions): Promise<TrainingSession> {
    const c = state.config;
    const denormals = o.denormals ?? 'flush';
    // Shards of this process; with MPI, every rank has as many, and the layout, the
    // routing and the expert groups count them all (rank r's shards come r-th).
    const shards = Math.max(1, o.workers);
    const ranks = o.mpi?.size ?? 1, rank = o.mpi?.rank ?? 0;
    if (o.mpi) checkRankShards(ranks, shards, c.experts);
    const allShards = ranks * shards, shardOffset = rank * shards;
    const groups = shardExperts(c.experts, allShards);
    const localGroups = groups.slice(shardOffset, shardOffset + shards);
    const rankExperts = Array.from({ length: ranks }, (_, r) => {
      const mine = groups.slice(r * shards, (r + 1) * shards);
      return { first: mine[0]!.first, count: mine.reduce((n, g) => n + g.count, 0) };
    });
    const rule = o.rule ?? routingRule(c.routing);
    // Dense: every expert computes the whole batch where it lies (no gathering), one block
    // each, on its owner; sparse: blocks of gathered rows that any shard may compute.
    const dense = c.routing.kind === 'dense' && !o.rule;
    const layout = planLayout(dense ? denseSizes(c, state.optimizer, o.maxBatch, allShards) : sparseSizes(c, state.optimizer, o.maxBatch, allShards, rule));
    // Validation's scratch follows the layout; the shards never look past the layout.
    const inferenceRows = o.validationRows ? Math.min(chunkRows(state.config), o.validationRows) : 0;
    const byteLength = inferenceRows > 0 ? InferenceEngine.homeEnd(c, layout.byteLength, inferenceRows) : layout.byteLength;
    const memory = allocateMemory(byteLength, `a training session (batch ${o.maxBatch})`, 'batchSize');
    const views = mapViews(memory.buffer, layout);
    setParams(views, state.params);
    const created = createKernels(memory, o.kernels);
    const kernels = o.wrapKernels ? o.wrapKernels(created) : created;
    const inference =
      inferenceRows > 0
        ? new InferenceEngine(provider.sgemm, () => created, c, views.gateParams, views.expertParams, views.routerBias, undefined, { memory, kernels: created, base: layout.byteLength, rows: inferenceRows })
        : undefined;
    const inner: ShardRunner =
      o.workers === 0
        ? new InProcessRunner(provider.sgemm, kernels, c, state.optimizer, layout, views, rankExperts[rank])
        : await ThreadRunner.start({
            memory,
            layout,
            config: c,
            optimizer: state.optimizer,
            backend: provider.name,
            blasLibrary: provider.name === 'blas' ? provider.detail : undefined,
            shards: o.workers,
            kernels: o.kernels,
            stallTimeoutMs: o.stallTimeoutMs,
            entry: o.shardEntry,
            denormals,
            groups: localGroups,
          });
    // The runner owns threads and a watchdog timer: if anything after its start throws, it
    // is closed here (no session exists yet to close it).
    try {
      const ef = errorFunction(c.loss);
      const local = o.mpi ? new MpiRunner(inner, o.mpi, views, c, rankExperts, ef) : inner;
      const runner = o.wrapRunner ? o.wrapRunner(local, views) : local;
      const noiseRng = c.routing.noise ? new Rng(state.training.noiseRng!) : undefined;
      const router = new Router(views, {
        config: c,
        rule,
        maxBatch: o.maxBatch,
        blockRows: layout.sizes.maxBlockRows,
        groups,
        // MPI: each block stays on its expert's rank (results are the same either way).
        split: !dense && !o.mpi && (o.split ?? true),
        shardOffset,
        noiseRng,
        gemm: provider.sgemm,
        kernels,
      });
      const fm = new FloatMode(denormals);
      const step = new MixtureStep(provider.sgemm, kernels, c, state.optimizer, views, router, runner, data, fm);
      const inProcess = inner instanceof InProcessRunner ? inner : undefined;
      if (inProcess) inProcess.hooks.floatMode = fm;
      return new TrainingSession(memory, layout, views, runner, step, router, noiseRng, local instanceof MpiRunner ? local : undefined, inProcess, inference);
    } catch (err) {
      await inner.close();
      throw err;
    }
  }

  /** The live parameter views (they change with every step). */
  get params(): MixtureParams {
    return this.views;
  }

  /** Stop the runner's threads (idempotent). */
  close(): Promise<void> {
    return this.runner.close();
  }
}
