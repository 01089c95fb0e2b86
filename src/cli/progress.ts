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

function rate(sps: number): string {
  return Number.isFinite(sps) ? `${Math.round(sps).toLocaleString('en-US')} samples/s` : '- samples/s';
}

/** A progress display for a training run. */
export function createProgress(o: ProgressOptions): Progress {
  const stream = o.stream ?? process.stderr;
  if (!o.tty) {
    const width = String(o.totalEpochs).length;
    return {
      update(e) {
        const first = e.epoch === o.startEpoch + 1;
        if (first || e.epoch === o.totalEpochs || e.epoch % o.every === 0) {
          stream.write(`epoch ${String(e.epoch).padStart(width)}/${o.totalEpochs}  ${metrics(e)}  ${rate(e.samplesPerSecond)}\n`);
        }
      },
      stop() {},
    };
  }
  const bar = new SingleBar({
    stream,
    format: 'epoch {value}/{total} {bar} {metrics}  {rate}  eta {eta_formatted}',
    barsize: 24,
    hideCursor: true,
    clearOnComplete: false,
    etaBuffer: 20,
  });
  bar.start(o.totalEpochs, o.startEpoch, { metrics: '', rate: '' });
  let stopped = false;
  return {
    update(e) {
      if (!stopped) bar.update(e.epoch, { metrics: metrics(e), rate: rate(e.samplesPerSecond) });
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
}
