/**
 * The training loop shared by the in-process and the parallel trainer: data into the
 * mixture's memory layout, epochs of shuffled batches, validation, stopping rules and
 * callbacks. Only the {@link ExpertPool} differs between the two.
 */
import { availableParallelism } from 'node:os';
import { splitRows, subset, validateDataset, type Dataset } from '../data/dataset.js';
import { fitStandardizer, identityStandardizer, standardize } from '../data/standardize.js';
import { BackendError, MoeError, OptionError } from '../errors.js';
import { loadProvider } from '../compute/load.js';
import { BACKENDS } from '../compute/provider.js';
import { mapViews, planLayout, type MixtureLayout, type MixtureViews } from '../memory/layout.js';
import { expertShape, gateShape } from '../model/config.js';
import { mlpParamCount } from '../model/mlp.js';
import { optimizerStateSize } from '../optim/optimizers.js';
import { Rng } from '../rng.js';
import { checkWorkerCount, ParallelPool } from '../parallel/pool.js';
import { targetMatrix, type FitRun, type Mixture, type MixtureParams } from '../mixture.js';
import { InProcessPool } from './inprocess-pool.js';
import { checkFitOptions, type EpochInfo, type FaultInjection, type FitOptions, type FitResult, type StopReason } from './options.js';
import { MixtureStep, type ExpertPool } from './step.js';

/**
 * Expert compute per step (in flops: forward + backward ≈ 3 × 2·B·P per expert) below
 * which `workers: 'auto'` stays in-process: three phase round trips cost ~150 µs, which
 * is 15 Mflop at the ~100 GFLOP/s OpenBLAS does here.
 */
const AUTO_MIN_FLOPS = 1.5e7;

/** Decide the worker count; returns [workers, note]. */
export function chooseWorkers(m: Mixture, requested: number | 'auto' | undefined, batch: number): [number, string | undefined] {
  const E = m.config.experts;
  if (requested === undefined) return [0, undefined];
  if (requested === 'auto') {
    const flops = 6 * batch * mlpParamCount(expertShape(m.config)) * E;
    if (flops < AUTO_MIN_FLOPS) {
      return [0, `auto: in-process, one step's expert compute (~${(flops / 1e6).toFixed(2)} Mflop) is below the cost of synchronising worker threads`];
    }
    const w = Math.min(E, availableParallelism());
    return [w, `auto: ${w} workers (min of ${E} experts and ${availableParallelism()} cores)`];
  }
  if (requested > 0) checkWorkerCount(requested, E);
  return [requested, undefined];
}

function copyParams(from: MixtureParams, to: MixtureParams): void {
  to.gateParams.set(from.gateParams);
  to.expertParams.set(from.expertParams);
  to.gateOpt.set(from.gateOpt);
  to.expertOpt.set(from.expertOpt);
}

function snapshot(p: MixtureParams): MixtureParams {
  return { gateParams: p.gateParams.slice(), expertParams: p.expertParams.slice(), gateOpt: p.gateOpt.slice(), expertOpt: p.expertOpt.slice() };
}

/** Lay out the mixture's memory for `train` (shared when `shared`), data and parameters copied in. */
export function layoutFor(m: Mixture, train: Dataset, maxBatch: number, shards: number, shared: boolean): { views: MixtureViews; buffer: ArrayBufferLike; layout: MixtureLayout } {
  const c = m.config;
  const layout = planLayout({
    rows: train.n,
    inputs: c.inputs,
    outputs: c.outputs,
    experts: c.experts,
    maxBatch,
    expertParams: mlpParamCount(expertShape(c)),
    gateParams: mlpParamCount(gateShape(c)),
    optState: optimizerStateSize(m.optimizer.name),
    shards: Math.max(1, shards),
  });
  let buffer: ArrayBufferLike;
  if (shared) {
    if (typeof SharedArrayBuffer !== 'function') {
      throw new MoeError('SHARED_MEMORY_UNAVAILABLE', 'SharedArrayBuffer is not available in this runtime; use workers: 0');
    }
    buffer = new SharedArrayBuffer(layout.byteLength);
  } else buffer = new ArrayBuffer(layout.byteLength);
  const views = mapViews(buffer, layout);
  standardize(m.inputScaler!, train.x, train.n, views.x);
  views.t.set(targetMatrix(m, train));
  if (train.labels) views.labels.set(train.labels);
  copyParams(m.params, views);
  return { views, buffer, layout };
}

/** Start the shard workers of a mixture on memory laid out by {@link layoutFor}. */
export function startPoolFor(
  m: Mixture,
  mem: { buffer: ArrayBufferLike; layout: MixtureLayout },
  shards: number,
  maxBatch: number,
  faultInjection?: FaultInjection,
): Promise<ParallelPool> {
  return ParallelPool.start({
    buffer: mem.buffer as SharedArrayBuffer,
    layout: mem.layout,
    config: m.config,
    optimizer: m.optimizer,
    backend: m.provider.name,
    blasLibrary: m.provider.name === 'blas' ? m.provider.detail : undefined,
    shards,
    maxBatch,
    faultInjection,
  });
}

export async function runFit(m: Mixture, data: Dataset, o: FitOptions): Promise<FitResult> {
  checkFitOptions(o);
  const c = m.config;
  validateDataset(data, { inputs: c.inputs, outputs: c.outputs, task: c.task });
  if (o.validationData) validateDataset(o.validationData, { inputs: c.inputs, outputs: c.outputs, task: c.task });
  if (o.signal?.aborted) throw new MoeError('ABORTED', `training aborted before its first step; parameters are those of step ${m.training.step}`);
  const t0 = performance.now();

  let train = data;
  let val = o.validationData;
  if (o.validationSplit) {
    const [tr, va] = splitRows(data.n, o.validationSplit, m.training.seed);
    train = subset(data, tr);
    val = subset(data, va);
  }
  const batchSize = Math.min(o.batchSize ?? 32, train.n);
  // A checkpoint taken mid-epoch continues that epoch exactly, which needs its batch size.
  let skip = m.training.batch ?? 0;
  if (skip > 0 && m.training.batchSize !== batchSize) {
    throw new OptionError('batchSize', `the model stopped mid-epoch after ${skip} batches of ${m.training.batchSize}; resume with batch size ${m.training.batchSize} to finish that epoch exactly`);
  }
  const [workers, workersNote] = chooseWorkers(m, o.workers, batchSize);
  // Fitted on the first training set only; undone if this fit is refused before training.
  const fittedHere = !m.inputScaler;
  if (fittedHere) {
    m.inputScaler = fitStandardizer(train.x, train.n, c.inputs);
    m.targetScaler = c.task === 'regression' ? fitStandardizer(train.y!, train.n, c.outputs) : identityStandardizer(c.outputs);
  }

  const { views, buffer, layout } = layoutFor(m, train, batchSize, workers, workers > 0);
  const run: FitRun = { closed: false };
  m.activeRun = run;
  const previous = m.params;
  m.params = views; // parameters now live in the trainer's (possibly shared) memory
  let pool: ExpertPool;
  let parallel: ParallelPool | undefined;
  if (workers === 0) {
    pool = new InProcessPool(m.provider.sgemm, c, m.optimizer, views, batchSize);
  } else {
    // The provider must load in every worker; where it does not (tfjs-node is known to
    // fail in a second thread), the run takes the next provider and says so. Any failure
    // here leaves the model as it was before this fit.
    try {
      for (;;) {
        try {
          parallel = await startPoolFor(m, { buffer, layout }, workers, batchSize, o.faultInjection);
          break;
        } catch (err) {
          const next = BACKENDS[BACKENDS.indexOf(m.provider.name) + 1];
          if (!(err instanceof BackendError) || next === undefined || process.env.MOE_REQUIRE_BACKEND === m.provider.name) throw err;
          m.warn(`local-experts: ${err.message}; the run takes the next backend`);
          m.provider = await loadProvider(next, { onWarning: m.warn });
        }
      }
    } catch (err) {
      m.params = previous;
      if (m.activeRun === run) m.activeRun = undefined;
      if (fittedHere) m.inputScaler = m.targetScaler = undefined;
      throw err;
    }
    pool = parallel;
    run.pool = parallel;
  }

  const step = new MixtureStep(m.provider.sgemm, c, m.optimizer, views, batchSize, pool);
  const rng = new Rng(m.training.rng);
  const order = Int32Array.from({ length: train.n }, (_, i) => i);
  const history: EpochInfo[] = [];
  const epochs = o.epochs ?? 100;
  let stopReason: StopReason = 'epochs';
  let best: { value: number; epoch: number; params: MixtureParams } | undefined;
  let sinceBest = 0;
  let lr = m.optimizer.lr;
  // The in-process pool resolves every phase synchronously: without yielding now and then,
  // a long epoch never lets signal handlers (Ctrl-C) or timers run.
  let yieldedAt = performance.now();
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
      m.training.batchSize = batchSize;
      for (let start = skip * batchSize; start < train.n; start += batchSize) {
        if (o.signal?.aborted || run.closed) throw new MoeError('ABORTED', `training aborted at step ${m.training.step} (epoch ${m.training.epoch + 1}); parameters are those of step ${m.training.step}`);
        const batch = order.subarray(start, Math.min(start + batchSize, train.n));
        const t = m.training.step + 1;
        lr = o.schedule ? o.schedule({ epoch: m.training.epoch, step: t, baseLr: m.optimizer.lr }) : m.optimizer.lr;
        sum += await step.run(batch, lr, t);
        m.training.step = t;
        m.training.batch = (m.training.batch ?? 0) + 1;
        batches++;
        if (workers === 0 && performance.now() - yieldedAt > 50) {
          await new Promise((r) => setImmediate(r));
          yieldedAt = performance.now();
        }
      }
      const rowsDone = train.n - skip * batchSize;
      skip = 0;
      m.training.epoch++;
      m.training.batch = 0;
      m.training.rng = rng.state();
      const seconds = (performance.now() - te) / 1000;
      const info: EpochInfo = { epoch: m.training.epoch, loss: sum / batches, lr, step: m.training.step, seconds, samplesPerSecond: rowsDone / seconds };
      if (val) {
        const ev = m.evaluate(val);
        info.valLoss = ev.loss;
        if (ev.accuracy !== undefined) info.valAccuracy = ev.accuracy;
        if (ev.mse !== undefined) info.valMse = ev.mse;
      }
      history.push(info);
      if (o.earlyStopping) {
        const monitored = info.valLoss ?? info.loss;
        if (!best || monitored < best.value - (o.earlyStopping.minDelta ?? 0)) {
          best = { value: monitored, epoch: info.epoch, params: snapshot(views) };
          sinceBest = 0;
        } else if (++sinceBest >= o.earlyStopping.patience) {
          stopReason = 'early-stopping';
        }
      }
      if (o.stopAtLoss !== undefined && info.loss <= o.stopAtLoss) stopReason = 'criterion';
      if (o.stopWhen?.(info)) stopReason = 'criterion';
      if (o.onEpoch && (await o.onEpoch(info)) === false) stopReason = 'callback';
      if (stopReason !== 'epochs') break;
    }
  } finally {
    if (m.activeRun === run) m.activeRun = undefined;
    await parallel?.close();
  }
  const result: FitResult = {
    epochs: history.length,
    finalLoss: history.at(-1)?.loss ?? NaN,
    history,
    stopReason,
    backend: m.provider.name,
    workers,
    seconds: (performance.now() - t0) / 1000,
  };
  if (workersNote) result.workersNote = workersNote;
  if (best && stopReason === 'early-stopping' && (o.earlyStopping?.restoreBest ?? true)) {
    copyParams(best.params, views);
    result.bestEpoch = best.epoch;
  }
  return result;
}
