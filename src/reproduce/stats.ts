/**
 * Summary statistics over independent runs, and the error criterion every system is
 * held to. Pure functions: the table, the JSON and the tests all go through them.
 */

/** Arithmetic mean; NaN for no values. */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/**
 * Sample standard deviation (n − 1 in the denominator: the runs are a sample of the
 * seeds one could have drawn). 0 for a single run, NaN for none.
 */
export function sd(values: readonly number[]): number {
  const n = values.length;
  if (n === 0) return NaN;
  if (n === 1) return 0;
  const m = mean(values);
  let s = 0;
  for (const v of values) s += (v - m) ** 2;
  return Math.sqrt(s / (n - 1));
}

/** Median (mean of the two middle values for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** Element-wise mean of equal-length series (learning curves), in float64. */
export function meanSeries(series: readonly (readonly number[])[]): number[] {
  if (series.length === 0) return [];
  const len = Math.min(...series.map((s) => s.length));
  const out = new Array<number>(len).fill(0);
  for (const s of series) for (let i = 0; i < len; i++) out[i]! += s[i]! / series.length;
  return out;
}

/** Where a run stands against the criterion. */
export interface CriterionOutcome {
  reached: boolean;
  /** The first epoch (1-based) at which the criterion held, or the cap when it never did. */
  epochs: number;
}

/**
 * The error criterion shared by every system: the fraction of training cases classified
 * correctly, measured after each epoch, reaches `threshold`. A run that never reaches it
 * within `cap` epochs counts with `cap` epochs and `reached: false`, never dropped:
 * dropping the slow runs would flatter the slow system.
 */
export class CriterionTracker {
  private epoch = 0;
  private hit: number | undefined;

  constructor(
    /** Fraction of training cases correct, in (0, 1]. */
    readonly threshold: number,
    /** Epoch cap ≥ 1. */
    readonly cap: number,
  ) {
    if (!(threshold > 0 && threshold <= 1)) throw new RangeError(`criterion must be in (0, 1], got ${threshold}`);
    if (!(Number.isInteger(cap) && cap >= 1)) throw new RangeError(`epoch cap must be a positive integer, got ${cap}`);
  }

  /** Record one epoch's training accuracy; true exactly once, on the epoch the criterion is first met within the cap. */
  observe(trainAccuracy: number): boolean {
    this.epoch++;
    if (this.hit === undefined && this.epoch <= this.cap && trainAccuracy >= this.threshold) {
      this.hit = this.epoch;
      return true;
    }
    return false;
  }

  /** The outcome so far (after the last observed epoch). */
  outcome(): CriterionOutcome {
    return this.hit === undefined ? { reached: false, epochs: this.cap } : { reached: true, epochs: this.hit };
  }
}

/** {@link CriterionTracker} over a whole curve of per-epoch training accuracies. */
export function epochsToCriterion(trainAccuracy: readonly number[], threshold: number, cap: number): CriterionOutcome {
  const t = new CriterionTracker(threshold, cap);
  for (const a of trainAccuracy) t.observe(a);
  return t.outcome();
}
