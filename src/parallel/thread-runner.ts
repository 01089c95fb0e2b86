/**
 * The parallel shard runner: E experts sharded over W worker threads (contiguous groups,
 * balanced by count since every expert has the same cost), driven phase by phase. Each
 * mechanism has one job: piscina, thread lifecycle (each shard is one long-running task,
 * so a worker that throws or exits rejects a promise here instead of hanging the
 * trainer); comlink, the control API (init, snapshot), which never rejects pending calls
 * when a worker dies (comlink#601); the Atomics control block, the per-phase commands
 * (FORWARD, BACKWARD, UPDATE, STOP) and their completion. Whether the shards are alive is
 * src/parallel/liveness.ts's job, how this thread waits for a phase src/parallel/polling.ts's.
 */
import type { DenormalMode } from '../compute/float-mode.js';
import type { WasmMemory } from '../kernels/wasm-api.js';
import * as Comlink from 'comlink';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type { BackendName } from '../compute/provider.js';
import { BackendError, errorFromWire, errorToWire, MoeError, OptionError, ShardCrashError, type StepPhase, type WireError } from '../errors.js';
import type { KernelSetName } from '../kernels/types.js';
import { BUSY_SLOTS, CMD, CTRL, HYPER, mapViews, PHASE_NAMES, type Command, type MixtureLayout } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import type { OptimizerConfig } from '../optim/config.js';
import { shardExperts, type ExpertRange } from '../engine/plan.js';
import type { ShardRunner } from '../engine/runner.js';
import type { ShardApi, ShardResult, ShardTask } from './shard.js';
import { Liveness } from './liveness.js';
import { MainPolling, shardPollMicros } from './polling.js';
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

/** How long close() waits for shards to stop before the piscina pool is destroyed anyway. */
const CLOSE_GRACE_MS = 2000;

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
  /** Whether the shards are alive: deaths, the stall watchdog, ABORT. */
  private readonly live: Liveness;
  /** How the main thread waits for a phase: poll near its expected end, else park. */
  private readonly polling: MainPolling;
  /** The last command signalled (0 before the first), and whether it is still running. */
  private phase: Command | 0 = 0;
  private inFlight = false;
  private step = 0;
  /** CTRL.SEQ of the command in flight; a shard that finished it has SHARD_DONE[shard] = seq. */
  private seq = 0;
  /** When the command in flight was signalled. */
  private phaseStart = 0;
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
    this.live = new Liveness(this.ctrl, opts.shards, opts.stallTimeoutMs);
    this.polling = new MainPolling(this.ctrl, opts.shards);
    this.live.watch(() => this.inFlight);
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
    const pollMicros = shardPollMicros(opts.shards);
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
        shards: opts.shards,
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
    error ??= runner.live.failure as ShardCrashError | undefined;
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

  /** A shard's task rejected or ended: a crash, reported to {@link Liveness} with where it happened. */
  private fail(shard: number, detail: string, cause?: unknown): void {
    if (this.closed || this.live.failure) return;
    // Between steps (the last UPDATE completed everywhere) nothing is half-done.
    // Idle after an UPDATE (or a ping), every shard finished step `step`; idle between the
    // other phases, step `step` is still under way and nothing of it is applied yet.
    const betweenSteps = !this.inFlight && (this.phase === CMD.UPDATE || this.phase === CMD.PING);
    const phase = this.currentPhase();
    const during = phase !== 'between-steps' ? phase : betweenSteps ? 'a pause between steps' : `a pause after the ${PHASE_NAMES[this.phase]} phase of step ${this.step}`;
    const completed = betweenSteps ? this.step : this.step - 1;
    // In UPDATE the other shards must finish the update they were given before they are
    // told to stop (wait() raises ABORT once they have): raising it now would stop a shard
    // that has not yet read the command, and its experts would stay a step behind.
    this.live.crashed(shard, new ShardCrashError(shard, this.expertsOf(shard), phase, completed, detail, { cause, during }), this.inFlight && this.phase === CMD.UPDATE);
  }

  /** The phase in flight, or `between-steps` when idle (`start-up` before the first). */
  private currentPhase(): StepPhase {
    if (this.phase === 0) return 'start-up';
    if (!this.inFlight) return 'between-steps';
    const name = PHASE_NAMES[this.phase];
    return name === 'forward' || name === 'backward' || name === 'update' ? name : 'between-steps';
  }

  /**
   * Give up on shards that are alive but did not finish the phase in time: their threads
   * are terminated (by destroying the piscina pool) and the fit rejects with a ShardStallError.
   */
  private stall(): never {
    const err = this.live.stalled(this.seq, this.currentPhase(), this.step - 1);
    // Terminating the workers must not wait for the hung ones: destroy() terminates them.
    void this.close();
    throw err;
  }

  private signal(cmd: Command, rows: number, step: number): void {
    if (this.live.failure) return; // reported by the next wait
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

  /**
   * Wait for the command in flight: liveness first (a failure is thrown; a phase past the
   * stall limit is a stall), then the polling strategy's spin or park until DONE moves.
   */
  private async wait(): Promise<void> {
    const live = this.live;
    for (;;) {
      if (live.failure) {
        if (this.inFlight && this.phase === CMD.UPDATE && !live.aborted) {
          if (!(await live.survivorsFinished(this.seq, CLOSE_GRACE_MS))) live.failure.message += `; some other shards did not finish the update within ${CLOSE_GRACE_MS} ms either`;
          live.abort();
        }
        throw live.failure;
      }
      const done = Atomics.load(this.ctrl, CTRL.DONE);
      if (done >= this.workers) {
        this.inFlight = false;
        const took = performance.now() - this.phaseStart;
        this.polling.phaseEnded(this.phase, took);
        live.phaseEnded(took);
        return;
      }
      const elapsed = performance.now() - this.phaseStart;
      if (elapsed > live.stallLimitMs()) this.stall();
      const remaining = this.polling.remainingMs(this.phase, this.phaseStart);
      if (this.polling.spin(this.phase, remaining)) continue;
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
      // Ended by the shards' DONE notify, a death's, close()'s, or the liveness watchdog's
      // (at most 1 s apart while a phase is in flight: the stall limit is checked above).
      await this.polling.park(done, remaining, Math.max(1, Math.min(1000, live.stallLimitMs() - elapsed + 1)));
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
    this.live.unwatch();
    // Let a phase in flight finish, so that STOP never lands on a shard that has not yet
    // read the command (it would skip it, and an UPDATE would end half-applied).
    const until = performance.now() + CLOSE_GRACE_MS;
    while (this.inFlight && !this.live.failure && Atomics.load(this.ctrl, CTRL.DONE) < this.workers && performance.now() < until) {
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
