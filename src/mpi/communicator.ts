/**
 * MPI_COMM_WORLD for this process: rank, size, and the few collectives the trainer uses,
 * all non-blocking and polled from the event loop, so that the main thread never blocks
 * in MPI (the stall watchdog, the shards' crash reports and signal handlers run on that
 * loop). MPI is initialised FUNNELED: every call is made from the main thread (koffi's
 * async calls would run on pool threads, which FUNNELED forbids).
 *
 * Collectives work in place on views of the session's memory: each rank contributes its
 * own range and receives everyone else's. Reductions are used only on integers (flags and
 * counts), whose sum does not depend on the order: no MPI reduction ever feeds a
 * parameter, so parameters stay bit-identical for any number of ranks.
 */
import { MoeError } from '../errors.js';
import { loadMpi, MPI, type MpiLibrary } from './library.js';

/**
 * What one rank's collectives moved and how long they took, counted as payload: in an
 * allgatherv, this rank sends its own slice to each of the R − 1 others and receives
 * theirs; in an allreduce of n values it sends and receives n (none with one rank); in a
 * broadcast the root sends to R − 1 ranks and every other rank receives once. The MPI
 * library's algorithm may move more on the wire (a ring or recursive doubling forwards
 * others' slices); the payload is what the cost model counts.
 */
export interface ExchangeCounters {
  /** Collectives completed. */
  exchanges: number;
  /** Payload bytes this rank sent. */
  bytesSent: number;
  /** Payload bytes this rank received. */
  bytesReceived: number;
  /** Wall time inside collectives, ms: from the start call to MPI_Test's completion. */
  ms: number;
}

/** One rank's slice of a collective, in elements of the view. */
export interface RankSlices {
  /** counts[r]: elements rank r contributes. */
  counts: Int32Array;
  /** displs[r]: where rank r's elements start in the view. */
  displs: Int32Array;
}

let world: Communicator | undefined;
/** Errors of {@link Communicator.sameOnEveryRank}: the job ends without MPI_Abort. */
const AGREED = new WeakSet<object>();
/** Of those, the ones rank 0's report covers. */
const QUIET = new WeakSet<object>();

/**
 * UCX settings for a process that is also a V8 isolate:
 * - UCX traps SIGSEGV by default, and V8 uses SIGSEGV for WebAssembly bounds checks: with
 *   UCX's handler, an out-of-bounds access that V8 turns into a catchable RuntimeError
 *   kills the process instead (tested);
 * - UCX's memory hooks replace malloc and patch mmap/munmap in a process that has already
 *   allocated and runs V8's threads: about one run in 30 under load died in V8's lazy
 *   compiler (a memcpy of corrupted memory, core dump examined); without the hooks, none
 *   in about 95 runs of the MPI tests under the same load. This library's collectives work on memory that never moves or returns to the
 *   system during a fit, so UCX's registration cache loses nothing.
 */
const UCX_SETTINGS: readonly (readonly [string, string])[] = [
  ['UCX_ERROR_SIGNALS', ''],
  ['UCX_MEM_MALLOC_HOOKS', 'no'],
  ['UCX_MEM_EVENTS', 'no'],
];

/**
 * The least time a collective may wait before this rank gives up (ms): a collective waits
 * for the slowest rank to finish its phase, so the limit is the larger of this and 20 ×
 * the longest wait so far (as the shards' stall watchdog does), unless set.
 */
export const MIN_EXCHANGE_TIMEOUT_MS = 15_000;

/** Polls spent spinning (setImmediate) before backing off to a 1 ms timer. */
const SPIN_POLLS = 2_000;

export class Communicator {
  readonly rank: number;
  readonly size: number;
  /** Collectives completed (for reports). */
  exchanges = 0;
  /** Payload bytes this rank sent in collectives (see {@link ExchangeCounters}). */
  bytesSent = 0;
  /** Payload bytes this rank received in collectives. */
  bytesReceived = 0;
  /** Milliseconds spent in collectives, from the start call to MPI_Test's completion. */
  waitMs = 0;
  /**
   * Benchmarks: the same counters for each exchange by name ('the scores after FORWARD',
   * …) while set (`new Map()` switches them on); undefined, the default, costs one branch
   * per collective.
   */
  byExchange: Map<string, ExchangeCounters> | undefined;
  private busy = false;
  // Off V8's heap (a SharedArrayBuffer never moves): MPI writes the request's handle.
  private readonly request = new Int32Array(new SharedArrayBuffer(4));
  private readonly flag = new Int32Array(new SharedArrayBuffer(4));
  private finalized = false;
  /** The longest wait of a collective so far (ms). */
  private longestMs = 0;
  /** The views of the collective in flight (kept alive and unmoved until it completes). */
  inFlight: ArrayBufferView[] = [];
  /** A fixed limit on a collective's wait (ms), else adaptive. */
  timeoutMs: number | undefined;

  private constructor(readonly library: MpiLibrary) {
    const c = library.calls, out = new Int32Array(1);
    c.commRank(MPI.COMM_WORLD, out);
    this.rank = out[0]!;
    c.commSize(MPI.COMM_WORLD, out);
    this.size = out[0]!;
  }

  /**
   * The world communicator, initialising MPI on first use (FUNNELED, errors returned, not
   * fatal, so that they are reported in one line before every rank is aborted).
   */
  static world(opts: { library?: string } = {}): Communicator {
    if (world) return world;
    // UCX (MPICH's transport on Debian) must keep out of V8's way, and reads its settings
    // when the library loads and at init: they are set around both (where the user has
    // not set them) and the user's environment is put back after.
    const saved = UCX_SETTINGS.map(([name]) => [name, process.env[name]] as const);
    for (const [name, value] of UCX_SETTINGS) process.env[name] ??= value;
    let lib: MpiLibrary;
    try {
      lib = loadMpi(opts.library);
      const c = lib.calls, flag = new Int32Array(1), provided = new Int32Array(1);
      c.initialized(flag);
      if (flag[0] === 0) {
        const rc = c.initThread(null, null, MPI.THREAD_FUNNELED, provided);
        if (rc !== MPI.SUCCESS) throw new MoeError('MPI_UNAVAILABLE', `MPI_Init_thread failed with code ${rc}`);
        if (provided[0]! < MPI.THREAD_FUNNELED) throw new MoeError('MPI_UNAVAILABLE', `${lib.path} provides thread level ${provided[0]}, the trainer needs MPI_THREAD_FUNNELED`);
      }
    } finally {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    const c = lib.calls;
    c.setErrhandler(MPI.COMM_WORLD, MPI.ERRORS_RETURN);
    world = new Communicator(lib);
    process.once('exit', () => world?.finalize());
    return world;
  }

  /** Allgatherv in place: rank r's `slices.counts[r]` elements at `displs[r]` go to every rank. */
  allgatherv(view: Float32Array | Int32Array, slices: RankSlices, what: string): Promise<void> {
    const type = view instanceof Float32Array ? MPI.FLOAT : MPI.INT;
    let bytes = 0;
    for (let r = 0; r < this.size; r++) if (r !== this.rank) bytes += 4 * slices.counts[r]!;
    const sent = 4 * slices.counts[this.rank]! * (this.size - 1);
    return this.run(what, sent, bytes, [view, slices.counts, slices.displs], (req) => this.library.calls.iallgatherv(MPI.IN_PLACE, 0, type, view, slices.counts, slices.displs, type, MPI.COMM_WORLD, req));
  }

  /** Allreduce of integers in place (sum or max): flags and counts only, never parameters. */
  allreduceInts(values: Int32Array, op: 'sum' | 'max', what: string): Promise<void> {
    const bytes = this.size > 1 ? 4 * values.length : 0;
    return this.run(what, bytes, bytes, [values], (req) => this.library.calls.iallreduce(MPI.IN_PLACE, values, values.length, MPI.INT, op === 'sum' ? MPI.SUM : MPI.MAX, MPI.COMM_WORLD, req));
  }

  /** Broadcast of bytes from `root`. */
  bcast(bytes: Uint8Array, root: number, what: string): Promise<void> {
    const root0 = this.rank === root;
    return this.run(what, root0 ? bytes.length * (this.size - 1) : 0, root0 ? 0 : bytes.length, [bytes], (req) => this.library.calls.ibcast(bytes, bytes.length, MPI.BYTE, root, MPI.COMM_WORLD, req));
  }

  /** Gather every rank's equal-length ints: out[r·n …] = rank r's `mine` (n ints). */
  async allgatherInts(mine: Int32Array, what: string): Promise<Int32Array> {
    const n = mine.length, out = new Int32Array(n * this.size);
    out.set(mine, this.rank * n);
    const counts = new Int32Array(this.size).fill(n), displs = Int32Array.from({ length: this.size }, (_, r) => r * n);
    await this.allgatherv(out, { counts, displs }, what);
    return out;
  }

  /** The totals so far (subtract two of them for a span). */
  counters(): ExchangeCounters {
    return { exchanges: this.exchanges, bytesSent: this.bytesSent, bytesReceived: this.bytesReceived, ms: this.waitMs };
  }

  /**
   * Run `check`, whose failure every rank should meet alike (the same options on every
   * rank), then agree on the outcome: every rank learns which ranks failed. Where every
   * rank failed, each rethrows its own error and rank 0 alone reports it
   * ({@link Communicator.reportedByRankZero}); where only some did, each of those reports
   * its own, and the others throw MoeError('MPI_MISMATCH') naming them (reported by rank 0
   * only). Either way the errors are {@link Communicator.agreed}: the job ends normally,
   * without MPI_Abort, whose kill could come before mpiexec forwarded rank 0's report (a CI
   * run saw none of it). A collective that fails itself leaves the error unmarked (the
   * job is then aborted).
   */
  async sameOnEveryRank<T>(check: () => T | Promise<T>, what: string): Promise<T> {
    let value: T | undefined, failure: object | undefined;
    try {
      value = await check();
    } catch (err) {
      failure = typeof err === 'object' && err !== null ? err : new MoeError('INTERNAL', String(err));
    }
    let flags: Int32Array;
    try {
      // Every rank comes here, failed or not: the one collective pairs them all.
      flags = await this.allgatherInts(Int32Array.of(failure ? 1 : 0), what);
    } catch (err) {
      throw failure ?? err;
    }
    const failed: number[] = [];
    flags.forEach((f, r) => {
      if (f !== 0) failed.push(r);
    });
    if (failed.length === 0) return value as T;
    const all = failed.length === this.size;
    const them = failed.length > 1 ? `ranks ${failed.join(', ')}` : `rank ${failed[0]}`;
    const err = failure ?? new MoeError('MPI_MISMATCH', `${what}: ${them} failed where rank ${this.rank} did not (${failed.length > 1 ? 'their errors are on their' : 'its error is on its'} output)`);
    AGREED.add(err);
    if (all || !failure) QUIET.add(err);
    throw err;
  }

  /** Whether `err` came out of {@link Communicator.sameOnEveryRank}: no rank aborts the job for it. */
  static agreed(err: unknown): boolean {
    return typeof err === 'object' && err !== null && AGREED.has(err);
  }

  /** Whether rank 0's report covers `err` (every rank failed alike, or another rank's failure was named): other ranks print nothing. */
  static reportedByRankZero(err: unknown): boolean {
    return typeof err === 'object' && err !== null && QUIET.has(err);
  }

  /** End every rank of the job now (an abnormal exit of any rank). */
  abort(code = 1): void {
    if (this.finalized) return;
    this.library.calls.abort(MPI.COMM_WORLD, code);
  }

  /** MPI_Finalize, once (at exit). */
  finalize(): void {
    if (this.finalized) return;
    this.finalized = true;
    const flag = new Int32Array(1);
    this.library.calls.finalized(flag);
    if (flag[0] === 0) this.library.calls.finalize();
    world = undefined;
  }

  /** Start one non-blocking collective and poll it to completion from the event loop. */
  private async run(what: string, sent: number, received: number, views: ArrayBufferView[], start: (request: Int32Array) => number): Promise<void> {
    if (this.busy) throw new MoeError('INTERNAL', `MPI: ${what} started while another collective was in flight`);
    this.busy = true;
    // MPI reads and writes these until the request completes, through the addresses koffi
    // passed. A small typed array made with a length lives on V8's heap, where a
    // collection may move it: reading .buffer moves its elements off the heap for good
    // (V8 materialises the ArrayBuffer), and the field keeps them alive until completion.
    for (const v of views) void v.buffer;
    this.inFlight = views;
    const t0 = performance.now();
    const limit = this.timeoutMs ?? Math.max(MIN_EXCHANGE_TIMEOUT_MS, 20 * this.longestMs);
    try {
      const rc = start(this.request);
      if (rc !== MPI.SUCCESS) throw new MoeError('MPI_FAILED', `MPI: ${what} failed to start on rank ${this.rank} (code ${rc})`);
      for (let polls = 0; ; polls++) {
        const tr = this.library.calls.test(this.request, this.flag, MPI.STATUS_IGNORE);
        if (tr !== MPI.SUCCESS) throw new MoeError('MPI_FAILED', `MPI: ${what} failed on rank ${this.rank} (code ${tr}): another rank has probably died`);
        if (this.flag[0] !== 0) break;
        if (performance.now() - t0 > limit) {
          throw new MoeError('MPI_FAILED', `MPI: ${what} did not complete within ${Math.round(limit / 1000)} s on rank ${this.rank}: another rank is stalled or dead`);
        }
        // Spin on the event loop first (an exchange between phases usually completes in
        // microseconds to a few ms), then back off so a long wait does not take a core.
        await new Promise<void>((r) => (polls < SPIN_POLLS ? setImmediate(r) : setTimeout(r, 1)));
      }
      const ms = performance.now() - t0;
      this.exchanges++;
      this.bytesSent += sent;
      this.bytesReceived += received;
      this.waitMs += ms;
      this.longestMs = Math.max(this.longestMs, ms);
      if (this.byExchange) {
        let c = this.byExchange.get(what);
        if (!c) this.byExchange.set(what, (c = { exchanges: 0, bytesSent: 0, bytesReceived: 0, ms: 0 }));
        c.exchanges++;
        c.bytesSent += sent;
        c.bytesReceived += received;
        c.ms += ms;
      }
    } finally {
      this.busy = false;
      this.inFlight = [];
    }
  }
}
