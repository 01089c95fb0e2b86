/**
 * The main thread's long loops of a training step, in slices. A loop over rows × experts
 * (the gate's softmax, the routing, the error function's main side, the router's backward,
 * the balancing terms, the statistics) or over parameters (the gate's optimiser step)
 * takes seconds at a million experts; run whole, it would keep signal handlers, timers and
 * the user's callbacks waiting that long. Each such loop is cut into ranges [from, until)
 * of its rows (or experts, or parameters); between two ranges, once the slice has run
 * {@link PHASE_SLICE_MS}, the step yields a pause to its driver, which awaits it (the
 * event loop runs what waited), and a stop asked for meanwhile ends the step there, before
 * its UPDATE (parameters at the step before). A range computes exactly what the whole
 * loop computes for its rows, in the same order (running sums are carried from range to
 * range), so results do not depend on where the slices fall.
 */
import { MoeError } from '../errors.js';
import { PHASE_SLICE_MS } from './runner.js';

/** A long loop's ranges: what each range does, given [from, until). */
export type RangeWork = (from: number, until: number) => void;

/** Pauses a sliced section yields (each awaited by the step's driver before it goes on). */
export type Slices = Generator<Promise<void>, void, void>;

/** Cuts long loops into ranges, and says where a section may pause. */
export interface Slicer {
  /**
   * Run `work` over [0, n) in ranges of `per` (at least 1), in order; between two ranges,
   * once the slice is over, yield a pause.
   */
  ranges(n: number, per: number, work: RangeWork): Slices;
}

/** Rows (or experts) per range for a loop doing `cost` units of work per row: ~{@link RANGE_WORK} units a range. */
export function perRange(cost: number): number {
  return Math.max(1, Math.floor(RANGE_WORK / Math.max(1, cost)));
}

/** Units of work (about one float each) between two looks at the clock: well under a millisecond. */
export const RANGE_WORK = 1 << 16;

/** No slicing: every loop whole, nothing yielded (predict, tests, direct callers). */
export const WHOLE: Slicer = {
  ranges(n, _per, work) {
    if (n > 0) work(0, n);
    return NO_PAUSES;
  },
};

/** A section that never pauses (a finished generator): `yield*` over it costs one call. */
export const NO_PAUSES: Slices = (function* (): Slices {})();
NO_PAUSES.next();

/** Run a sliced section to its end without pausing (with {@link WHOLE}, nothing is ever yielded). */
export function drain(s: Slices): void {
  for (let r = s.next(); !r.done; r = s.next()) {
    // A pause is only a chance to yield: going on at once computes the same.
  }
}

/** The next macrotask: timers, I/O and signal handlers run before it resolves. */
export function pause(): Promise<void> {
  return new Promise<void>((r) => setImmediate(r));
}

/** A training step's slicer: the slice's deadline, and the stop check at each pause. */
export class StepSlicer implements Slicer {
  /** performance.now() after which a section pauses at its next range boundary. */
  private end = Infinity;
  /** The step in progress (1-based), for the stop's message. */
  step = 0;
  /** Whether a stop may end the step at a pause (before its UPDATE; never after). */
  abortable = true;
  /** Set by the fit: whether it was asked to stop (an MPI rank stops only by agreement: never). */
  interrupted: () => boolean = () => false;

  /** A new slice starts now (the step's start, and after every await). */
  restart(): void {
    this.end = performance.now() + PHASE_SLICE_MS;
  }

  /** Whether the slice has run its time. */
  due(): boolean {
    return performance.now() > this.end;
  }

  /** After an await: a stop asked for meanwhile ends the step, unless it has reached UPDATE. */
  stopIfAsked(): void {
    if (this.abortable && this.interrupted()) {
      throw new MoeError('ABORTED', `training aborted during step ${this.step}; parameters are those of step ${this.step - 1}`);
    }
  }

  ranges(n: number, per: number, work: RangeWork): Slices {
    // One range (every small step's case): run it now, with no generator to go through.
    if (n <= per) {
      if (n > 0) work(0, n);
      return NO_PAUSES;
    }
    return this.slicedRanges(n, per, work);
  }

  private *slicedRanges(n: number, per: number, work: RangeWork): Slices {
    for (let from = 0; from < n; ) {
      const until = Math.min(n, from + per);
      work(from, until);
      from = until;
      if (from < n && this.due()) {
        yield pause();
        this.stopIfAsked();
      }
    }
  }
}
