/**
 * Training progress on stderr (stdout stays for the summary and --json): a live bar on a
 * terminal, plain lines every N epochs otherwise (logs, pipes, CI).
 */
import { SingleBar } from 'cli-progress';
import { fmt } from './common.js';

/** What one epoch shows. */
export interface EpochLine {
  /** Epochs completed in the model's life. */
  epoch: number;
  loss: number;
  /** Accuracy or MSE on a fixed sample of the training rows. */
  accuracy?: number;
  mse?: number;
  valLoss?: number;
  valAccuracy?: number;
  valMse?: number;
  samplesPerSecond: number;
  /** Sparse routing: the coefficient of variation of the experts' load, and the rows dropped, this epoch. */
  loadCv?: number;
  dropped?: number;
}

export interface Progress {
  update(e: EpochLine): void;
  /** Finish the bar (idempotent); call before printing anything else to stderr. */
  stop(): void;
}

export interface ProgressOptions {
  /** Epochs already completed when this run starts (resume). */
  startEpoch: number;
  /** Total epochs at the end of this run. */
  totalEpochs: number;
  /** Plain mode: log every this many epochs (and the first and last). */
  every: number;
  /** Live bar (a terminal) or plain lines. */
  tty: boolean;
  stream?: NodeJS.WriteStream;
}

function metrics(e: EpochLine): string {
  const parts = [`loss ${fmt(e.loss)}`];
  if (e.accuracy !== undefined) parts.push(`acc ${fmt(e.accuracy, 3)}`);
  if (e.mse !== undefined) parts.push(`mse ${fmt(e.mse)}`);
  if (e.valLoss !== undefined) parts.push(`val loss ${fmt(e.valLoss)}`);
  if (e.valAccuracy !== undefined) parts.push(`val acc ${fmt(e.valAccuracy, 3)}`);
  if (e.valMse !== undefined) parts.push(`val mse ${fmt(e.valMse)}`);
  if (e.loadCv !== undefined) parts.push(`load cv ${fmt(e.loadCv, 3)}`);
  if (e.dropped) parts.push(`dropped ${e.dropped}`);
  return parts.join('  ');
}

/** Samples per second, short: `850 samples/s`, `47.8k samples/s`, `1.2M samples/s`. */
export function rate(sps: number): string {
  if (!Number.isFinite(sps)) return '- samples/s';
  const n = sps >= 1e6 ? `${(sps / 1e6).toFixed(1)}M` : sps >= 1e4 ? `${(sps / 1e3).toFixed(1)}k` : `${Math.round(sps)}`;
  return `${n} samples/s`;
}

/** Seconds as m:ss (h:mm:ss from an hour). */
export function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}` : `${m}:${String(r).padStart(2, '0')}`;
}

/** `0:12 (eta 1:03)`: the run's wall time so far, and the rest at the run's mean pace. */
export function timing(elapsedS: number, epochsDone: number, epochsLeft: number): string {
  const eta = epochsDone > 0 ? (elapsedS / epochsDone) * epochsLeft : NaN;
  return `${clock(elapsedS)} (eta ${clock(eta)})`;
}

/** A progress display for a training run. */
export function createProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  const t0 = performance.now();
  const time = (epoch: number): string => timing((performance.now() - t0) / 1000, epoch - o.startEpoch, o.totalEpochs - epoch);
  if (!o.tty) {
    const width = String(o.totalEpochs).length;
    return {
      update(e) {
        const first = e.epoch === o.startEpoch + 1;
        if (first || e.epoch === o.totalEpochs || e.epoch % o.every === 0) {
          stream.write(`epoch ${String(e.epoch).padStart(width)}/${o.totalEpochs}  ${time(e.epoch)}  ${metrics(e)}  ${rate(e.samplesPerSecond)}\n`);
        }
      },
      stop() {},
    };
  }
  // On a terminal the line is cut at its width: the position, time and pace come first
  // (they fit 80 columns), the metrics after them.
  const bar = new SingleBar({
    stream,
    format: 'epoch {value}/{total} {bar} {time}  {rate}  {metrics}',
    barsize: 12,
    hideCursor: true,
    clearOnComplete: false,
  });
  bar.start(o.totalEpochs, o.startEpoch, { metrics: '', rate: '', time: '' });
  let stopped = false;
  return {
    update(e) {
      if (!stopped) bar.update(e.epoch, { metrics: metrics(e), rate: rate(e.samplesPerSecond), time: time(e.epoch) });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
