import { isDenormalMode, type DenormalMode } from '../compute/float-mode.js';
import type { BackendName } from '../compute/provider.js';
import type { Dataset } from '../data/dataset.js';
import { OptionError } from '../errors.js';
import type { LrSchedule } from '../optim/config.js';

/** What one epoch reports to callbacks and the history. */
export interface EpochInfo {
  /** Epochs completed so far in the model's life (1-based, counts resumed epochs). */
  epoch: number;
  /** Mean training loss over the epoch's batches (standardised units). */
  loss: number;
  /** Validation loss (standardised units), where there is validation data. */
  valLoss?: number;
  /** Classification: validation fraction correct, where there is validation data. */
  valAccuracy?: number;
  /** Regression: validation MSE in original units, where there is validation data. */
  valMse?: number;
  /** Learning rate of the epoch's last step. */
  lr: number;
  /** Optimisation steps so far. */
  step: number;
  /** Wall time of the epoch, in seconds. */
  seconds: number;
  /** Training rows processed per second of the epoch. */
  samplesPerSecond: number;
  /** How the rows were routed in this epoch. */
  routing: RoutingMetrics;
}

/** Routing over one epoch's steps. */
export interface RoutingMetrics {
  /** Rows each expert computed, summed over the epoch (E numbers; dense: every row for each). */
  rowsPerExpert: number[];
  /** Rows no expert took (expert-choice), summed over the epoch. */
  droppedRows: number;
  /** Experts that computed no row in the epoch. */
  unusedExperts: number;
  /** Mean over rows of the gate's entropy −Σ_i p_i log p_i (full softmax, nats). */
  gateEntropy: number;
  /** Coefficient of variation (std ÷ mean) of rowsPerExpert: 0 is a perfectly even load. */
  loadCv: number;
  /** Each worker's compute time per step, ms (one entry in-process), mean over the epoch. */
  workerBusyMs: number[];
}

/** Options of {@link Mixture.fit}. */
export interface FitOptions {
  /**
   * Epochs to run in THIS call (default 100), whatever the model has done before. (The
   * CLI's `--epochs` is different: the total over the model's life, which `--resume`
   * continues to.)
   */
  epochs?: number;
  /** Rows per step (default 32, capped at the training rows). */
  batchSize?: number;
  /** Reshuffle the rows every epoch (default true). */
  shuffle?: boolean;
  /**
   * Fraction of the rows held out for validation, in [0, 1) (default 0). Drawn from the
   * seed; recorded in the model's training state (`validationSplit`), so that a resumed
   * run can hold out the same rows.
   */
  validationSplit?: number;
  /** A separate validation set (instead of validationSplit). */
  validationData?: Dataset;
  /** Stop once an epoch's mean training loss is ≤ this. */
  stopAtLoss?: number;
  /** Stop once this returns true for an epoch. */
  stopWhen?: (e: EpochInfo) => boolean;
  /**
   * Stop when the validation loss (training loss without validation) has not improved by
   * `minDelta` for `patience` epochs; restore the best epoch's weights (default true).
   * The counters (best loss, its epoch, epochs since) are kept in the model's training
   * state and saved with it, so a fit of a resumed checkpoint continues them; a best epoch
   * from before this call cannot be restored (its weights are not stored).
   */
  earlyStopping?: {
    /** Epochs without improvement before stopping (integer ≥ 1). */
    patience: number;
    /** Smallest loss decrease that counts as improvement (default 0). */
    minDelta?: number;
    /** Restore the best epoch's weights when stopping (default true). */
    restoreBest?: boolean;
  };
  /** Called after every epoch; return false to stop. */
  onEpoch?: (e: EpochInfo) => void | boolean | Promise<void | boolean>;
  /** Abort: fit rejects with MoeError('ABORTED') after the current step; weights stay at that step. */
  signal?: AbortSignal;
  /** Learning rate per epoch/step (default: constant). */
  schedule?: LrSchedule;
  /**
   * Worker threads for the experts: 0 in-process (default), N ≥ 1 shards, or `auto`:
   * min(experts, cores), or in-process where one step's expert compute is smaller than
   * the cost of synchronising the threads (paper-sized experts).
   */
  workers?: number | 'auto';
  /**
   * Parallel fits: milliseconds a phase may run before shards that have not finished are
   * declared stalled (the fit rejects with a ShardStallError and their threads are
   * terminated). Default max(60 000, 20 × the longest phase so far).
   */
  stallTimeout?: number;
  /**
   * Sparse routing with workers: share a hot expert's blocks among the workers so that
   * none idles while another holds it (default true), or keep each expert's blocks on
   * its own worker. The parameters are the same either way, bit for bit.
   */
  splitExperts?: boolean;
  /**
   * Float mode of every thread that computes this fit: `flush` (default) sets
   * flush-to-zero and denormals-are-zero, so values below 2⁻¹²⁶ become 0 instead of
   * slowing each operation on them (up to ~100× on Intel CPUs); `ieee` keeps gradual
   * underflow. A resumed model keeps the mode it was trained in unless this is given.
   * Where flushing is not supported (see the README) the fit runs `ieee` and says so once.
   * Parameters are bit-identical across worker counts in either mode, not across modes.
   */
  denormals?: DenormalMode;
  /**
   * Run as one rank of an MPI job (start every rank with `mpiexec -n R`, the same data,
   * options and seed): the experts are partitioned across the ranks, then across each
   * rank's `workers`; every rank runs the gate and the loss. Parameters are bit-identical
   * to one process for any ranks × workers (≤ experts). Needs an MPICH-ABI library
   * (libmpich.so.12, or MOE_MPI_LIBRARY). Snapshots are whole at epoch ends (onEpoch) and
   * after the fit. Never detected from the environment. Default false.
   */
  mpi?: boolean;
}

/** Why a fit stopped. */
export type StopReason = 'epochs' | 'criterion' | 'early-stopping' | 'callback';

/** What {@link Mixture.fit} resolves to. */
export interface FitResult {
  /** Epochs run in this call. */
  epochs: number;
  /** Mean training loss of the last epoch. */
  finalLoss: number;
  /** One entry per epoch run in this call, in order. */
  history: EpochInfo[];
  /** Why training stopped. */
  stopReason: StopReason;
  /** Epoch whose weights were restored by early stopping. */
  bestEpoch?: number;
  /** Compute provider the fit ran on. */
  backend: BackendName;
  /** Worker threads used (0 = in-process). */
  workers: number;
  /** Why `auto` chose what it chose, when it did. */
  workersNote?: string;
  /** Wall time of the whole fit, in seconds. */
  seconds: number;
  /** The float mode the fit ran in (also recorded in the model's training state). */
  denormals: DenormalMode;
}

/** Check a fit's options (types and ranges); one OptionError naming the option. */
export function checkFitOptions(o: FitOptions): void {
  const posInt = (v: unknown, name: string, min: number): void => {
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min)) {
      throw new OptionError(name, `must be an integer ≥ ${min}, got ${String(v)}`);
    }
  };
  posInt(o.epochs, 'epochs', 0);
  posInt(o.batchSize, 'batchSize', 1);
  if (o.validationSplit !== undefined && !(o.validationSplit >= 0 && o.validationSplit < 1)) {
    throw new OptionError('validationSplit', `must be in [0, 1), got ${o.validationSplit}`);
  }
  if (o.validationSplit && o.validationData) throw new OptionError('validationSplit', 'give validationSplit or validationData, not both');
  if (o.workers !== undefined && o.workers !== 'auto') posInt(o.workers, 'workers', 0);
  if (o.earlyStopping) posInt(o.earlyStopping.patience, 'earlyStopping.patience', 1);
  if (o.schedule !== undefined && typeof o.schedule !== 'function') throw new OptionError('schedule', scheduleTypeMessage(o.schedule));
  if (o.splitExperts !== undefined && typeof o.splitExperts !== 'boolean') throw new OptionError('splitExperts', `must be true or false, got ${String(o.splitExperts)}`);
  if (o.mpi !== undefined && typeof o.mpi !== 'boolean') throw new OptionError('mpi', `must be true or false, got ${String(o.mpi)}`);
  if (o.denormals !== undefined && !isDenormalMode(o.denormals)) throw new OptionError('denormals', `must be 'flush' or 'ieee', got ${JSON.stringify(o.denormals)}`);
  if (o.stallTimeout !== undefined && !(typeof o.stallTimeout === 'number' && o.stallTimeout > 0 && Number.isFinite(o.stallTimeout))) {
    throw new OptionError('stallTimeout', `must be a positive number of milliseconds, got ${String(o.stallTimeout)}`);
  }
}

/**
 * The learning rate a schedule gives for a step, checked before it is used: a schedule
 * that is not a function, or returns anything but a finite number ≥ 0 (NaN, ±Infinity,
 * a negative rate that would train uphill), is an OptionError naming the step.
 */
export function scheduledLr(schedule: unknown, info: { epoch: number; step: number; baseLr: number }): number {
  if (typeof schedule !== 'function') throw new OptionError('schedule', scheduleTypeMessage(schedule));
  const lr: unknown = (schedule as LrSchedule)(info);
  if (typeof lr !== 'number' || !Number.isFinite(lr) || lr < 0) {
    const shown = typeof lr === 'number' ? String(lr) : typeof lr === 'string' ? JSON.stringify(lr.slice(0, 40)) : lr === null ? 'null' : typeof lr;
    throw new OptionError('schedule', `returned ${shown} for step ${info.step} (epoch ${info.epoch + 1}); a learning rate must be a finite number ≥ 0`);
  }
  return lr;
}

/** A schedule whose every value is checked by {@link scheduledLr} before the trainer uses it. */
export function checkedSchedule(schedule: unknown): LrSchedule {
  return (info) => scheduledLr(schedule, info);
}

/**
 * Refuse a fit that would carry the model's counters past what a model file holds (step
 * and epoch are safe integers, ≤ 2⁵³ − 1): checked before training starts, so that a
 * resumed run never writes a file the loader refuses. `rows` bounds the training rows.
 */
export function checkCounters(training: { step: number; epoch: number }, o: FitOptions, rows: number): void {
  const epochs = o.epochs ?? 100;
  const max = Number.MAX_SAFE_INTEGER;
  if (training.epoch + epochs > max) {
    throw new OptionError('epochs', `${epochs} more epochs after the ${training.epoch} done would pass ${max}, the most epochs a model file holds`);
  }
  const perEpoch = Math.max(1, Math.ceil(rows / Math.max(1, o.batchSize ?? 32)));
  if (training.step + epochs * perEpoch > max) {
    throw new OptionError('epochs', `${epochs} more epochs of up to ${perEpoch} steps after the ${training.step} steps done would pass ${max}, the most steps a model file holds`);
  }
}

/**
 * A fit's options, guarded before the fit starts: counters a model file cannot hold
 * refused ({@link checkCounters}), the schedule type-checked and wrapped so that every
 * value it returns is checked ({@link scheduledLr}). Everything else is checked by
 * {@link checkFitOptions} as before.
 */
export function guardedFitOptions(o: FitOptions, training: { step: number; epoch: number }, data: unknown): FitOptions {
  if (o.epochs !== undefined && typeof o.epochs !== 'number') throw new OptionError('epochs', `must be an integer ≥ 0, got ${String(o.epochs)}`);
  const rows = (data as { n?: unknown } | null)?.n;
  if (typeof rows === 'number') checkCounters(training, o, rows);
  if (o.schedule === undefined) return o;
  if (typeof o.schedule !== 'function') throw new OptionError('schedule', scheduleTypeMessage(o.schedule));
  return { ...o, schedule: checkedSchedule(o.schedule) };
}

function scheduleTypeMessage(v: unknown): string {
  return `must be a function ({ epoch, step, baseLr }) => learning rate, got ${v === null ? 'null' : typeof v}`;
}
