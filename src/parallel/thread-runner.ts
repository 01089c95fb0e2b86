/**
 * The parallel shard runner: E experts sharded over W worker threads (contiguous groups,
 * balanced by count since every expert has the same cost), driven through the control
 * block in shared memory. Lifecycle by piscina (each shard is one long-running task, so a
 * worker that throws or exits rejects a promise here instead of hanging the trainer);
 * control plane by comlink, which never rejects pending calls when a worker dies
 * (comlink#601): liveness is this class's job, and a shard task rejecting is the signal.
 */
import type { DenormalMode } from '../compute/float-mode.js';
import type { WasmMemory } from '../kernels/wasm-api.js';
import * as Comlink from 'comlink';
import { availableParallelism } from 'node:os';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type { BackendName } from '../compute/provider.js';
import { BackendError, errorFromWire, errorToWire, MoeError, OptionError, ShardCrashError, ShardStallError, type StepPhase, type WireError } from '../errors.js';
import type { KernelSetName } from '../kernels/types.js';
import { BUSY_SLOTS, CMD, CTRL, HYPER, mapViews, PHASE_NAMES, type Command, type MixtureLayout } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import type { OptimizerConfig } from '../optim/config.js';
import { shardExperts, type ExpertRange } from '../engine/plan.js';
import type { ShardRunner } from '../engine/runner.js';
import type { ShardApi, ShardResult, ShardTask } from './shard.js';
import { releaseThreads, shardThreads } from './threads.js';

/** What a runner of shard workers is started with. */
export interface ThreadRunnerOptions {
  /** The session's kernel memory, laid out by `layout` (see src/memory/layout.ts). */
  memory: WasmMemory;
  /** Where each region lies in `memory`. */
  layout: MixtureLayout;
  /** The mixture's configuration (sets the experts' shape and count). */
  config: MixtureConfig;
  /** Optimiser the shards apply to their experts in UPDATE. */
  optimizer: Required<OptimizerConfig>;
  /** The provider every shard must load (the main thread's). */
  backend: BackendName;
  /** CBLAS library path for `blas`. */
  blasLibrary?: string | undefined;
  /** Worker threads W, 1 ≤ W ≤ experts. */
  shards: number;
  /** The kernel set every shard instantiates. */
  kernels: KernelSetName;
  /**
   * Milliseconds a phase may run before the shards that have not finished are declared
   * stalled; undefined: max(60 s, 20 × the longest phase so far).
   */
  stallTimeoutMs?: number | undefined;
  /** The worker entry file (tests substitute a fixture that wraps the real one). */
  entry?: string | undefined;
  /** The experts of each of the W shards (default: E split in W contiguous groups; an MPI rank's share otherwise). */
  groups?: ExpertRange[] | undefined;
  /** Float mode every shard thread sets at the start of its task (default flush). */
  denormals?: DenormalMode | undefined;
}

/**
 * How long a shard polls for the next command before parking, where it has a core of its
 * own (cores > workers): long enough to cover the main thread's work between phases.
 */
const POLL_MICROS = 300;

/** The window (ms) before a phase's expected end in which the main thread polls. */
const MAIN_POLL_MS = 0.5;

/** How long close() waits for shards to stop before the piscina pool is destroyed anyway. */
const CLOSE_GRACE_MS = 2000;

/** The stall timeout's floor, and its multiple of the longest phase seen. */
const STALL_FLOOR_MS = 60_000;
const STALL_FACTOR = 20;

/**
 * The experts of one fit, sharded over worker threads and driven phase by phase through
 * the control block (see the module comment). Started by {@link ThreadRunner.start},
 * stopped by {@link ThreadRunner.close}; most callers use `fit({ workers })` instead.
 */
export class ThreadRunner implements ShardRunner {
  readonly workers: number;
  private readonly ctrl: Int32Array;
  private readonly hyper: Float64Array;
  private readonly busy: Float64Array;
  private readonly groups: ExpertRange[];
  private failure: ShardCrashError | ShardStallError | undefined;
  /** The last command signalled (0 before the first), and whether it is still running. */
  private phase: Command | 0 = 0;
  private inFlight = false;
  private step = 0;
  /** CTRL.SEQ of the command in flight; a shard that finished it has SHARD_DONE[shard] = seq. */
  private seq = 0;
  private failedShard = -1;
  /** When the command in flight was signalled, and each command's typical duration (ms). */
  private phaseStart = 0;
  private readonly typicalMs = new Float64Array(8);
  /** The longest phase so far (ms), for the default stall timeout. */
  private longestMs = 0;
  private readonly stallTimeoutMs: number | undefined;
  /** The main thread polls near a phase's end only where it has a core of its own. */
  private readonly mainPolls: boolean;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** STOP has been sent: no phase can complete any more. */
  private stopped = false;
  private readonly tasks: Promise<unknown>[] = [];
  private readonly apis: Comlink.Remote<ShardApi>[] = [];
  private readonly ports: MessagePort[] = [];

  private constructor(
    private readonly threads: { threads: Piscina; shared: boolean },
    opts: ThreadRunnerOptions,
  ) {
    this.workers = opts.shards;
    const v = mapViews(opts.memory.buffer, opts.layout);
    this.ctrl = v.control;
    // A fresh control block: a runner started on memory that an earlier runner used (the
    // fall-back to the next provider does that) must not inherit its STOP or ABORT.
    this.ctrl.fill(0);
    this.hyper = v.hyper;
    this.busy = v.busy;
    this.groups = opts.groups ?? shardExperts(opts.config.experts, opts.shards);
    this.mainPolls = availableParallelism() > opts.shards;
    this.stallTimeoutMs = opts.stallTimeoutMs;
  }

  /** Which experts a shard owns, for error messages. */
  private expertsOf(shard: number): number[] {
    const g = this.groups[shard]!;
    return Array.from({ length: g.count }, (_, j) => g.first + j);
  }

  /** Start W shard workers on the shared buffer; resolves once every shard has loaded the provider. */
  static async start(opts: ThreadRunnerOptions): Promise<ThreadRunner> {
    if (typeof SharedArrayBuffer !== 'function' || !(opts.memory.buffer instanceof SharedArrayBuffer)) {
      throw new MoeError('SHARED_MEMORY_UNAVAILABLE', 'the parallel trainer needs SharedArrayBuffer, which this runtime does not provide; use workers: 0');
    }
    const threads = shardThreads(opts.entry);
    const piscina = threads.threads;
    const runner = new ThreadRunner(threads, opts);
    const pollMicros = availableParallelism() > opts.shards ? POLL_MICROS : 0;
    const inits: Promise<{ backend: BackendName; detail: string } | { error: WireError }>[] = [];
    runner.groups.forEach((g, shard) => {
      const { port1, port2 } = new MessageChannel();
      const task: ShardTask = {
        shard,
        first: g.first,
        count: g.count,
        memory: opts.memory,
        layout: opts.layout,
        config: opts.config,
        optimizer: opts.optimizer,
        backend: opts.backend,
        kernels: opts.kernels,
        denormals: opts.denormals ?? 'flush',
        pollMicros,
        port: port2,
        ...(opts.blasLibrary !== undefined ? { blasLibrary: opts.blasLibrary } : {}),
      };
      const running = piscina.run(task, { transferList: [port2] as never }) as Promise<ShardResult>;
      runner.tasks.push(
        running.then(
          (r) => {
            // A provider that failed to load is reported by start(), as a BackendError.
            if (!runner.closed && r === 'stopped') runner.fail(shard, 'its task ended while the trainer was running');
          },
          (err: unknown) => runner.fail(shard, err instanceof Error ? err.message : String(err), err),
        ),
      );
      const api = Comlink.wrap<ShardApi>(port1 as unknown as Comlink.Endpoint);
      runner.apis.push(api);
      runner.ports.push(port1);
      // comlink's call never settles if the worker dies, so race it against the task.
      const ended = running.then((r): { error: WireError } =>
        r === 'stopped' ? { error: { code: 'INTERNAL', name: 'Error', message: 'shard task ended during init' } } : { error: r.initError },
      );
      inits.push(Promise.race([api.init(), ended]));
    });
    // Every init settles: comlink's promise is raced against the task, and a rejection is
    // turned into a wire error here so that a dead shard is reported below, with its class.
    const results = await Promise.all(
      inits.map((p) => p.catch((err: unknown) => ({ error: errorToWire(err) }))),
    );
    // A provider that does not load in a worker comes first: the trainer can move to the
    // next provider. Otherwise a shard that died during start-up has been reported by
    // fail(), as a ShardCrashError naming it: that is the error, not init's echo of it.
    let error: Error | undefined;
    results.forEach((r, shard) => {
      if (!error && 'error' in r && r.error.code === 'BACKEND_UNAVAILABLE') error = new BackendError(`shard ${shard}: ${r.error.message}`);
    });
    error ??= runner.failure as ShardCrashError | undefined;
    results.forEach((r, shard) => {
      if (error) return;
      if ('error' in r) error = new ShardCrashError(shard, runner.expertsOf(shard), 'start-up', -1, errorFromWire(r.error).message);
      else if (r.backend !== opts.backend) error = new BackendError(`shard ${shard} loaded ${r.backend}, the run uses ${opts.backend}`);
    });
    if (error) {
      await runner.close();
      throw error;
    }
    return runner;
  }

  private fail(shard: number, detail: string, cause?: unknown): void {
    if (this.closed || this.failure) return;
    // Between steps (the last UPDATE completed everywhere) nothing is half-done.
    // Idle after an UPDATE (or a ping), every shard finished step `step`; idle between the
    // other phases, step `step` is still under way and nothing of it is applied yet.
    const betweenSteps = !this.inFlight && (this.phase === CMD.UPDATE || this.phase === CMD.PING);
    const phase = this.currentPhase();
    const during = phase !== 'between-steps' ? phase : betweenSteps ? 'a pause between steps' : `a pause after the ${PHASE_NAMES[this.phase]} phase of step ${this.step}`;
    const completed = betweenSteps ? this.step : this.step - 1;
    this.failure = new ShardCrashError(shard, this.expertsOf(shard), phase, completed, detail, { cause, during });
    this.failedShard = shard;
    // In UPDATE the other shards must finish the update they were given before they are
    // told to stop (wait() raises ABORT once they have): raising it now would stop a shard
    // that has not yet read the command, and its experts would stay a step behind.
    if (!(this.inFlight && this.phase === CMD.UPDATE)) this.abort();
    Atomics.notify(this.ctrl, CTRL.DONE);
  }

  /** The phase in flight, or `between-steps` when idle (`start-up` before the first). */
  private currentPhase(): StepPhase {
    if (this.phase === 0) return 'start-up';
    if (!this.inFlight) return 'between-steps';
    const name = PHASE_NAMES[this.phase];
    return name === 'forward' || name === 'backward' || name === 'update' ? name : 'between-steps';
  }

  /** The stall timeout now: the option, or max(60 s, 20 × the longest phase so far). */
  private stallLimitMs(): number {
    return this.stallTimeoutMs ?? Math.max(STALL_FLOOR_MS, STALL_FACTOR * this.longestMs);
  }

  /** Shards that have not finished the command in flight. */
  private unfinished(): number[] {
    const out: number[] = [];
    for (let shard = 0; shard < this.workers; shard++) if (Atomics.load(this.ctrl, CTRL.SHARD_DONE_BASE + shard) !== this.seq) out.push(shard);
    return out;
  }

  /**
   * Give up on shards that are alive but did not finish the phase in time: their threads
   * are terminated (by destroying the piscina pool) and the fit rejects with a ShardStallError.
   */
  private stall(): never {
    const phase = this.currentPhase();
    const completed = this.step - 1;
    const err = new ShardStallError(this.unfinished(), phase, completed, this.stallLimitMs());
    this.failure ??= err;
    this.abort();
    // Terminating the workers must not wait for the hung ones: destroy() terminates them.
    void this.close();
    throw err;
  }

  /** Stop every shard's loop (a shard died). */
  private abort(): void {
    Atomics.store(this.ctrl, CTRL.ABORT, 1);
    Atomics.add(this.ctrl, CTRL.SEQ, 1);
    Atomics.notify(this.ctrl, CTRL.SEQ);
  }

  /** After a crash in UPDATE: wait (bounded) until every other shard has finished it. */
  private async survivorsUpdated(): Promise<boolean> {
    const deadline = performance.now() + CLOSE_GRACE_MS;
    for (;;) {
      let pending = false;
      for (let shard = 0; shard < this.workers; shard++) {
        if (shard !== this.failedShard && Atomics.load(this.ctrl, CTRL.SHARD_DONE_BASE + shard) !== this.seq) pending = true;
      }
      if (!pending) return true;
      if (performance.now() > deadline) return false;
      const done = Atomics.load(this.ctrl, CTRL.DONE);
      // Timed: the deadline bounds a survivor that is itself stuck.
      // Short timed waits: a survivor's DONE notify wakes this at once.
      const w = Atomics.waitAsync(this.ctrl, CTRL.DONE, done, 50);
      if (w.async) await w.value;
    }
  }

  private signal(cmd: Command, rows: number, step: number): void {
    if (this.failure) return; // reported by the next wait
    if (this.closed) throw new MoeError('ABORTED', `training stopped: the mixture was closed during fit; parameters are those of step ${step - 1}`);
    this.phase = cmd;
    this.inFlight = true;
    this.step = step;
    Atomics.store(this.ctrl, CTRL.CMD, cmd);
    Atomics.store(this.ctrl, CTRL.ROWS, rows);
    Atomics.store(this.ctrl, CTRL.STEP, step);
    Atomics.store(this.ctrl, CTRL.DONE, 0);
    this.seq = Atomics.add(this.ctrl, CTRL.SEQ, 1) + 1;
    Atomics.notify(this.ctrl, CTRL.SEQ);
    this.phaseStart = performance.now();
  }

  private async wait(): Promise<void> {
    for (;;) {
      if (this.failure) {
        if (this.inFlight && this.phase === CMD.UPDATE && Atomics.load(this.ctrl, CTRL.ABORT) === 0) {
          if (!(await this.survivorsUpdated())) this.failure.message += `; some other shards did not finish the update within ${CLOSE_GRACE_MS} ms either`;
          this.abort();
        }
        throw this.failure;
      }
      const done = Atomics.load(this.ctrl, CTRL.DONE);
      if (done >= this.workers) {
        this.inFlight = false;
        // A running mean that follows the phase's duration up and down (short last batches
        // of an epoch pull it down only a little).
        const took = performance.now() - this.phaseStart, typical = this.typicalMs[this.phase]!;
        this.typicalMs[this.phase] = typical === 0 ? took : typical + 0.2 * (took - typical);
        if (took > this.longestMs) this.longestMs = took;
        return;
      }
      const elapsed = performance.now() - this.phaseStart;
      if (elapsed > this.stallLimitMs()) this.stall();
      // A thread parked through a phase of milliseconds takes 100–500 µs to wake on this
      // kind of VM; polling over the phase's expected end (bounded, and only on a core no
      // shard needs) saves that. A death reported meanwhile waits for the poll to end.
      const remaining = this.typicalMs[this.phase]! - (performance.now() - this.phaseStart);
      if (this.mainPolls && this.typicalMs[this.phase]! > 0 && remaining < MAIN_POLL_MS) {
        const until = performance.now() + 3 * MAIN_POLL_MS;
        while (Atomics.load(this.ctrl, CTRL.DONE) < this.workers && performance.now() < until) {
          // poll
        }
        if (Atomics.load(this.ctrl, CTRL.DONE) >= this.workers) continue;
      }
      // close() lets the phase in flight finish before it stops the shards; once it has
      // stopped them, this phase can no longer complete.
      if (this.stopped) {
        // The phase outlasted close()'s grace period. Any phase but UPDATE leaves every
        // parameter at the previous step; an UPDATE cut short leaves some experts updated.
        throw new MoeError(
          'ABORTED',
          this.phase === CMD.UPDATE
            ? `training stopped: the mixture was closed during fit while step ${this.step} updated the experts, and some shards had not finished it within ${CLOSE_GRACE_MS} ms; the gate and the finished shards are at step ${this.step}, the experts of the unfinished shards may be partly updated (save a checkpoint from onEpoch for a consistent state)`
            : `training stopped: the mixture was closed during fit; parameters are those of step ${this.step - 1}`,
        );
      }
      // waitAsync, never Atomics.wait: a worker's death reaches this thread as its piscina
      // task rejecting, on this event loop; a blocking wait would hang instead of failing.
      // fail() notifies DONE to wake this wait at once; the timeout either ends the wait in
      // time to poll over the phase's expected end, or is a safety net.
      // The timeout also bounds the wait by the stall limit, which is checked above.
      const cap = Math.max(1, Math.min(1000, this.stallLimitMs() - elapsed + 1));
      const w = Atomics.waitAsync(this.ctrl, CTRL.DONE, done, this.mainPolls && remaining > MAIN_POLL_MS ? Math.min(remaining - MAIN_POLL_MS, cap) : cap);
      if (w.async) await w.value;
    }
  }

  beginForward(rows: number, step: number): void {
    this.signal(CMD.FORWARD, rows, step);
  }
  finishForward(): Promise<void> {
    return this.wait();
  }
  beginBackward(rows: number, step: number): void {
    this.signal(CMD.BACKWARD, rows, step);
  }
  finishBackward(): Promise<void> {
    return this.wait();
  }
  beginUpdate(lr: number, step: number): void {
    this.hyper[HYPER.LR] = lr;
    this.signal(CMD.UPDATE, 0, step);
  }
  finishUpdate(): Promise<void> {
    return this.wait();
  }

  /** A phase with no work: the bare round trip of the trainer's own signalling and wait. */
  async ping(): Promise<void> {
    this.signal(CMD.PING, 0, this.step);
    await this.wait();
  }

  /**
   * Milliseconds each shard has spent computing, per command (index by CMD.FORWARD etc.),
   * accumulated since the runner started: wall time minus this is synchronisation.
   */
  busyMillis(): number[][] {
    return Array.from({ length: this.workers }, (_, shard) => Array.from(this.busy.subarray(shard * BUSY_SLOTS, (shard + 1) * BUSY_SLOTS)));
  }

  /** Each shard's expert range. */
  get shards(): readonly ExpertRange[] {
    return this.groups;
  }

  /** A consistent copy of one shard's experts' parameters, read through its control API. */
  snapshot(shard: number): Promise<Float32Array> {
    const api = this.apis[shard];
    if (!api) throw new OptionError('shard', `no shard ${shard}`);
    return api.snapshot();
  }

  /** Stop every shard and destroy the piscina pool (when it is the fit's own); no thread is left running. Idempotent. */
  close(): Promise<void> {
    // Every caller (Mixture.close(), the fit's own clean-up) waits for the same shutdown.
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closed = true; // signal() refuses new phases from here on
    // Let a phase in flight finish, so that STOP never lands on a shard that has not yet
    // read the command (it would skip it, and an UPDATE would end half-applied).
    const until = performance.now() + CLOSE_GRACE_MS;
    while (this.inFlight && !this.failure && Atomics.load(this.ctrl, CTRL.DONE) < this.workers && performance.now() < until) {
      // Timed: a stuck shard must not stall close().
      const w = Atomics.waitAsync(this.ctrl, CTRL.DONE, Atomics.load(this.ctrl, CTRL.DONE), 50);
      if (w.async) await w.value;
    }
    this.stopped = true;
    Atomics.store(this.ctrl, CTRL.CMD, CMD.STOP);
    Atomics.add(this.ctrl, CTRL.SEQ, 1);
    Atomics.notify(this.ctrl, CTRL.SEQ);
    // Wake a pending wait(): it sees `closed` and rejects instead of waiting on.
    Atomics.notify(this.ctrl, CTRL.DONE);
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      Promise.allSettled(this.tasks).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), CLOSE_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
    for (const api of this.apis) api[Comlink.releaseProxy]();
    // comlink's release never closes the port itself (its RELEASE reply is never matched,
    // comlink 4.4): close it here, or every fit leaves a live port behind.
    for (const port of this.ports) port.close();
    // Threads whose task ended go back to the process's piscina pool for the next fit; a shard
    // that did not stop (hung) can only be terminated with its piscina pool.
    await releaseThreads(this.threads, !ended);
  }

  /** `await using runner = await ThreadRunner.start(…)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
