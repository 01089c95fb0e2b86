/**
 * One fit (FitRun), the same for every worker count: data checked and standardised once
 * (the training set into the session, the validation set for the session's inference
 * engine), epochs of shuffled batches, validation, stopping rules, callbacks, and
 * snapshots at step boundaries. Only the session's runner differs between in-process and
 * parallel training. The control path from fit() to an expert's forward pass, one job per
 * name, is in README.md ("Control path", in the architecture section).
 */
import { Communicator } from '../mpi/communicator.js';
import { blasCore, compareAcrossRanks, digest, maxAcrossRanks } from '../mpi/lockstep.js';
import { availableParallelism } from 'node:os';
import { effectiveMode, type DenormalMode } from '../compute/float-mode.js';
import { loadProvider } from '../compute/load.js';
import { BACKENDS, type ComputeProvider } from '../compute/provider.js';
import { splitRows, subset, validateDataset, type Dataset } from '../data/dataset.js';
import { constantColumns, fitStandardizer, identityStandardizer } from '../data/standardize.js';
import type { TrainingData } from '../engine/step.js';
import { trainingData } from './data.js';
import { checkWorkerCount } from '../engine/plan.js';
import { BackendError, DataError, listValues, MoeError, OptionError } from '../errors.js';
import { kernelSetFromEnv } from '../kernels/index.js';
import { expertShape, type MixtureConfig } from '../model/config.js';
import { mlpParamCount } from '../model/mlp.js';
import { cloneState, copyParams, setParams, type MixtureParams, type ModelState } from '../model/state.js';
import { Rng } from '../rng.js';
import { SHARD_ENTRY, WRAP_RUNNER, type InternalFitOptions } from './internal.js';
import { BUSY_SLOTS, CMD } from '../memory/layout.js';
import { checkFitOptions, type EpochInfo, type FitOptions, type FitResult, type RoutingMetrics, type StopReason } from './options.js';
import { TrainingSession } from './session.js';
import { Validation } from './validation.js';

/**
 * Expert compute per step (in flops: forward + backward ≈ 3 × 2·B·P per expert) below
 * which `workers: 'auto'` stays in-process: three phase round trips cost ~150 µs, which
 * is 15 Mflop at the ~100 GFLOP/s OpenBLAS does here.
 */
const AUTO_MIN_FLOPS = 1.5e7;

/** Decide the worker count; returns [workers, note]. */
export function chooseWorkers(config: MixtureConfig, requested: number | 'auto' | undefined, batch: number): [number, string | undefined] {
  const E = config.experts;
  if (requested === undefined) return [0, undefined];
  if (requested === 'auto') {
    const flops = 6 * batch * mlpParamCount(expertShape(config)) * E;
    if (flops < AUTO_MIN_FLOPS) {
      return [0, `auto: in-process, one step's expert compute (~${(flops / 1e6).toFixed(2)} Mflop) is below the cost of synchronising worker threads`];
    }
    const w = Math.min(E, availableParallelism());
    return [w, `auto: ${w} workers (min of ${E} experts and ${availableParallelism()} cores)`];
  }
  if (requested > 0) checkWorkerCount(requested, E);
  return [requested, undefined];
}

/** What a fit needs of the model it trains (the public Mixture gives it itself). */
export interface FitHost {
  /** The model's state; the fit updates its training state and scalers, and its parameters at the end. */
  readonly state: ModelState;
  /** The provider the math runs on; a parallel fit whose workers cannot load it moves to the next. */
  provider: ComputeProvider;
  /** One-line warnings. */
  warn(message: string): void;
}

/**
 * One fit: its loop ({@link FitRun.train}), and its handle as the model sees it while it
 * runs: its session, whether it is inside a step, close(), and the snapshots waiting for
 * the next step boundary.
 */
export class FitRun {
  /** close() was called: stop after the current step. */
  closed = false;
  /** The session, once started. */
  session: TrainingSession | undefined;
  /** Inside a step (parameters may be changing). */
  inStep = false;
  private readonly pending: (() => void)[] = [];

  constructor(private readonly host: FitHost) {}

  /** A consistent copy of the model taken at a step boundary (now, if between steps). */
  snapshot(): Promise<ModelState> {
    const take = (): ModelState => cloneState(this.host.state, copyParams(this.session ? this.session.params : this.host.state.params));
    if (!this.inStep) return Promise.resolve(take());
    return new Promise((resolve) => this.pending.push(() => resolve(take())));
  }

  /** At a step boundary: serve the snapshots that waited for it (synchronously). */
  boundary(): void {
    this.inStep = false;
    for (const serve of this.pending.splice(0)) serve();
  }

  /** The parameters as they are now. */
  get params(): MixtureParams {
    return this.session ? this.session.params : this.host.state.params;
  }

  /** Train the model on `data` (see {@link FitOptions}); once per FitRun. */
  async train(data: Dataset, o: FitOptions): Promise<FitResult> {
    const host = this.host, run = this;
    checkFitOptions(o);
    const state = host.state;
    const c = state.config;
    validateDataset(data, { inputs: c.inputs, outputs: c.outputs, task: c.task });
    if (o.validationData) validateDataset(o.validationData, { inputs: c.inputs, outputs: c.outputs, task: c.task });
    if (o.signal?.aborted) throw new MoeError('ABORTED', `training aborted before its first step; parameters are those of step ${state.training.step}`);
    const t0 = performance.now();

    let train = data;
    let val = o.validationData;
    if (o.validationSplit) {
      state.training.validationSplit = o.validationSplit;
      const [tr, va] = splitRows(data.n, o.validationSplit, state.training.seed);
      train = subset(data, tr);
      val = subset(data, va);
    }
    const batchSize = Math.min(o.batchSize ?? 32, train.n);
    // A checkpoint taken mid-epoch continues that epoch exactly, which needs its batch size.
    let skip = state.training.batch ?? 0;
    if (skip > 0 && state.training.batchSize !== batchSize) {
      throw new OptionError('batchSize', `the model stopped mid-epoch after ${skip} batches of ${state.training.batchSize}; resume with batch size ${state.training.batchSize} to finish that epoch exactly`);
    }
    if (skip > 0 && skip === Math.ceil(train.n / batchSize)) {
      // Every batch of the epoch done, its bookkeeping not (a snapshot that an earlier
      // 0.2 pre-release took after an epoch's last batch): finish it without training.
      const r = new Rng(state.training.rng);
      if (o.shuffle ?? true) r.shuffle(Int32Array.from({ length: train.n }, (_, i) => i));
      state.training.rng = r.state();
      state.training.epoch++;
      state.training.batch = 0;
      skip = 0;
    }
    if (skip > Math.ceil(train.n / batchSize)) {
      // The same data with the same split has at least the batches already done (a snapshot
      // taken after an epoch's last batch has done all of them).
      throw new DataError(
        `the model stopped mid-epoch ${state.training.epoch + 1} after ${skip} batches of ${batchSize} (${skip * batchSize} rows), but this training set has ${train.n} rows, ${Math.ceil(train.n / batchSize)} batches; resume on the data (and validation split) it was trained on`,
        {},
        'DATA_SHAPE',
      );
    }
    const [workers, workersNote] = chooseWorkers(c, o.workers, batchSize);
    const epochs = o.epochs ?? 100;
    // MPI: this process is one rank; MPI is initialised here, never detected.
    const comm = o.mpi ? Communicator.world() : undefined;
    if (comm) comm.timeoutMs = o.stallTimeout;
    // The recorded mode of a resumed model, unless the caller chose one.
    const denormals = effectiveMode(o.denormals ?? state.training.denormals ?? 'flush', (m) => host.warn(m));
    // Fitted on the first training set only; undone if this fit is refused before training.
    const fittedHere = !state.inputScaler;
    if (fittedHere) {
      const constant = constantColumns(train.x, train.n, c.inputs);
      state.inputScaler = fitStandardizer(train.x, train.n, c.inputs, constant);
      state.targetScaler = c.task === 'regression' ? fitStandardizer(train.y!, train.n, c.outputs) : identityStandardizer(c.outputs);
      if (constant.length > 0) {
        const names = listValues(constant.map((j) => state.featureNames?.[j] ?? train.featureNames?.[j] ?? `#${j + 1}`));
        host.warn(`local-experts: input column${constant.length > 1 ? 's' : ''} ${names} ${constant.length > 1 ? 'are' : 'is'} constant on the training rows (standardised to 0: no information for the experts or the gate)`);
      }
    }
    let session: TrainingSession | undefined;
    // Both sets standardised once, here: the training set into the session's dataset, the
    // validation set for the session's inference engine (measured after every epoch).
    let validation: Validation | undefined;
    try {
      const data = trainingData(state, train);
      validation = val ? new Validation(state, val) : undefined;
      session = await startSession(host, data, batchSize, workers, o, denormals, comm, validation?.rows);
      if (comm) {
        await compareAcrossRanks(comm, [
          ['the training data', digest(data.x, data.t, data.labels)],
          ['the configuration, optimiser, seed and training position', digest(JSON.stringify([c, state.optimizer, state.training.seed, state.training.step, state.training.epoch, state.training.rng, batchSize, o.shuffle ?? true, epochs]))],
          ['the Node version', digest(process.version)],
          ["OpenBLAS's core", digest(blasCore(host.provider))],
          ['the kernel set', digest(kernelSetFromEnv())],
          ['the float mode', digest(denormals)],
        ], 'the start of the fit');
      }
    } catch (err) {
      if (fittedHere) state.inputScaler = state.targetScaler = undefined;
      // A session started before the ranks disagreed owns threads and a timer: close it.
      await session?.close();
      throw err;
    }
    run.session = session;
    state.training.denormals = denormals;
    const views = session.params;

    const rng = new Rng(state.training.rng);
    const order = Int32Array.from({ length: train.n }, (_, i) => i);
    const history: EpochInfo[] = [];
    let stopReason: StopReason = 'epochs';
    // Early stopping continues from the model's recorded position (a resumed checkpoint);
    // the weights of a best epoch before this call are not in the file, so only a best
    // epoch of this call can be restored.
    const es = o.earlyStopping ? state.training.earlyStopping : undefined;
    let best: { value: number; epoch: number; params?: MixtureParams } | undefined = es ? { value: es.best, epoch: es.bestEpoch } : undefined;
    let sinceBest = es?.sinceBest ?? 0;
    const baseLr = state.optimizer.lr;
    let lr = baseLr;
    // The in-process runner resolves every phase synchronously: without yielding now and then,
    // a long epoch never lets signal handlers (Ctrl-C) or timers run.
    let yieldedAt = performance.now();
    const fm = session.step.fm, hold = workers === 0 && !comm;
    // MPI: a rank asked to stop tells the others in the step's agreement; all stop together.
    const mpiRunner = session.mpi;
    if (mpiRunner) mpiRunner.stopRequested = () => (o.signal?.aborted ?? false) || run.closed;
    // A long phase (in-process, the experts'; for every runner, the main thread's own loops)
    // yields between slices, and a stop asked for meanwhile ends the step there (parameters
    // at the step before); an MPI rank stops only by agreement.
    else {
      const interrupted = (): boolean => (o.signal?.aborted ?? false) || run.closed;
      session.step.slices.interrupted = interrupted;
      if (session.inProcess) session.inProcess.hooks.interrupted = interrupted;
    }
    try {
      for (let e = 0; e < epochs; e++) {
        const te = performance.now();
        if (o.shuffle ?? true) {
          // Shuffle 0..n−1 afresh: the order then depends only on the saved rng state, so a
          // resumed fit draws the same batches as an uninterrupted one.
          for (let j = 0; j < order.length; j++) order[j] = j;
          rng.shuffle(order);
        }
        let sum = 0, batches = 0;
        state.training.batchSize = batchSize;
        session.router.stats.reset();
        const busyAtStart = session.views.busy.slice();
        // In-process, the float mode stays set across the epoch's steps (a switch costs a C
        // call; a small step is ~45 µs) and is put back wherever the user's code can run:
        // the schedule, the yields to the event loop, and the end of the epoch.
        if (hold) fm.enter();
        try {
          for (let start = skip * batchSize; start < train.n; start += batchSize) {
            if (!mpiRunner && (o.signal?.aborted || run.closed)) throw new MoeError('ABORTED', `training aborted at step ${state.training.step} (epoch ${state.training.epoch + 1}); parameters are those of step ${state.training.step}`);
            const batch = order.subarray(start, Math.min(start + batchSize, train.n));
            const t = state.training.step + 1;
            lr = o.schedule ? fm.outside(() => o.schedule!({ epoch: state.training.epoch, step: t, baseLr })) : baseLr;
            run.inStep = true;
            const loss = session.step.run(batch, lr, t);
            // In-process the step is done already: no await, so no other code runs in the mode.
            sum += typeof loss === 'number' ? loss : await loss;
            state.training.step = t;
            if (session.noiseRng) state.training.noiseRng = session.noiseRng.state();
            if (start + batchSize >= train.n) {
              // The epoch's last batch: its bookkeeping comes before the step boundary, so a
              // snapshot taken there is an epoch end (never "every batch done, epoch not").
              state.training.epoch++;
              state.training.batch = 0;
              state.training.rng = rng.state();
            } else {
              state.training.batch = (state.training.batch ?? 0) + 1;
            }
            run.boundary();
            batches++;
            if (hold && performance.now() - yieldedAt > 50) {
              const depth = fm.suspend();
              try {
                await new Promise((r) => setImmediate(r));
              } finally {
                fm.resume(depth);
              }
              yieldedAt = performance.now();
            }
          }
        } finally {
          if (hold) fm.leave();
        }
        // MPI: every expert whole on every rank before validation, callbacks and snapshots.
        if (mpiRunner) await mpiRunner.gather();
        const rowsDone = train.n - skip * batchSize;
        skip = 0;
        const seconds = (performance.now() - te) / 1000;
        const info: EpochInfo = { epoch: state.training.epoch, loss: sum / batches, lr, step: state.training.step, seconds, samplesPerSecond: rowsDone / seconds, routing: routingMetrics(session, busyAtStart, Math.max(1, workers)) };
        if (validation) {
          const ev = validation.measure(session);
          info.valLoss = ev.loss;
          if (ev.accuracy !== undefined) info.valAccuracy = ev.accuracy;
          if (ev.mse !== undefined) info.valMse = ev.mse;
        }
        history.push(info);
        if (o.earlyStopping) {
          const monitored = info.valLoss ?? info.loss;
          if (!best || monitored < best.value - (o.earlyStopping.minDelta ?? 0)) {
            best = { value: monitored, epoch: info.epoch, params: copyParams(views) };
            sinceBest = 0;
          } else if (++sinceBest >= o.earlyStopping.patience) {
            stopReason = 'early-stopping';
          }
          state.training.earlyStopping = { best: best.value, bestEpoch: best.epoch, sinceBest };
        }
        if (o.stopAtLoss !== undefined && info.loss <= o.stopAtLoss) stopReason = 'criterion';
        if (o.stopWhen?.(info)) stopReason = 'criterion';
        if (o.onEpoch && (await o.onEpoch(info)) === false) stopReason = 'callback';
        if (comm) {
          // The ranks agree on the gate and the last routing plan, and stop together.
          await compareAcrossRanks(comm, [
            ["the gate's parameters", digest(views.gateParams, views.routerBias)],
            ['the routing plan', digest(session.views.expertStart, session.views.blockExpert)],
          ], `the end of epoch ${info.epoch}`);
          stopReason = STOP_REASONS[await maxAcrossRanks(comm, STOP_REASONS.indexOf(stopReason), 'the stop decision')]!;
        }
        if (stopReason !== 'epochs') break;
      }
    } catch (err) {
      // A stop or divergence every rank agreed on: the others' experts are needed whole.
      if (mpiRunner && err instanceof MoeError && (err.code === 'ABORTED' || err.code === 'DIVERGED')) await mpiRunner.gather();
      throw err;
    } finally {
      await session.close();
      // The parameters move back to the model's own memory; the session's memory (and the
      // standardised dataset with it) is released with the session.
      setParams(state.params, views);
      run.session = undefined;
      run.boundary();
    }
    const result: FitResult = {
      epochs: history.length,
      finalLoss: history.at(-1)?.loss ?? NaN,
      history,
      stopReason,
      backend: host.provider.name,
      workers,
      seconds: (performance.now() - t0) / 1000,
      denormals,
    };
    if (workersNote) result.workersNote = workersNote;
    if (best?.params && stopReason === 'early-stopping' && (o.earlyStopping?.restoreBest ?? true)) {
      setParams(state.params, best.params);
      result.bestEpoch = best.epoch;
    }
    return result;
  }
}

/** Start the session, moving to the next provider where the workers cannot load this one. */
async function startSession(host: FitHost, data: TrainingData, batchSize: number, workers: number, o: FitOptions, denormals: DenormalMode, mpi: Communicator | undefined, validationRows: number | undefined): Promise<TrainingSession> {
  const entry = (o as InternalFitOptions)[SHARD_ENTRY], wrapRunner = (o as InternalFitOptions)[WRAP_RUNNER];
  const kernels = kernelSetFromEnv();
  for (;;) {
    try {
      return await TrainingSession.start(host.state, host.provider, data, { maxBatch: batchSize, workers, kernels, stallTimeoutMs: o.stallTimeout, shardEntry: entry, split: o.splitExperts, denormals, wrapRunner, mpi, validationRows });
    } catch (err) {
      const next = BACKENDS[BACKENDS.indexOf(host.provider.name) + 1];
      if (!(err instanceof BackendError) || workers === 0 || mpi || next === undefined || process.env.MOE_REQUIRE_BACKEND === host.provider.name) throw err;
      host.warn(`local-experts: ${err.message}; the run takes the next backend`);
      host.provider = await loadProvider(next, { onWarning: (m) => host.warn(m) });
    }
  }
}

/** The epoch's routing statistics and each worker's compute time per step. */
function routingMetrics(session: TrainingSession, busyAtStart: Float64Array, shards: number): RoutingMetrics {
  const st = session.router.stats, busy = session.views.busy;
  const workerBusyMs = Array.from({ length: shards }, (_, shard) => {
    let ms = 0;
    for (const cmd of [CMD.FORWARD, CMD.BACKWARD, CMD.UPDATE]) ms += busy[shard * BUSY_SLOTS + cmd]! - busyAtStart[shard * BUSY_SLOTS + cmd]!;
    return ms / Math.max(1, st.steps);
  });
  return { rowsPerExpert: Array.from(st.rowsPerExpert), droppedRows: st.dropped, unusedExperts: st.unused, gateEntropy: st.entropy, loadCv: st.loadCv, workerBusyMs };
}

/** Stop reasons by rank of precedence in an MPI run's agreement (the highest wins). */
const STOP_REASONS: readonly StopReason[] = ['epochs', 'criterion', 'early-stopping', 'callback'];
