/**
 * A shard: the worker-thread side of the parallel trainer, and the piscina task itself
 * (workers/shard.ts only names it for piscina). It maps the session's shared kernel
 * memory, loads the run's compute provider and kernel set, and then loops on the Atomics
 * control block running FORWARD / BACKWARD / UPDATE for its blocks and experts until STOP
 * (or ABORT). Its comlink API, on a MessagePort of its own, has two calls: init (load the
 * provider and kernels, start the loop) and snapshot (a copy of its experts).
 */
import type { WasmMemory } from '../kernels/wasm-api.js';
import * as Comlink from 'comlink';
import type { MessagePort } from 'node:worker_threads';
import { setThreadMode, type DenormalMode } from '../compute/float-mode.js';
import { loadExactProvider } from '../compute/load.js';
import type { BackendName } from '../compute/provider.js';
import { ExpertSide } from '../engine/expert-side.js';
import { errorToWire, type WireError } from '../errors.js';
import { createKernels } from '../kernels/index.js';
import type { KernelSetName } from '../kernels/types.js';
import { BUSY_SLOTS, CMD, CTRL, HYPER, mapViews, type MixtureLayout } from '../memory/layout.js';
import { pollFor } from './polling.js';
import type { MixtureConfig } from '../model/config.js';
import type { OptimizerConfig } from '../optim/config.js';

/** Everything a shard task is started with (structured-cloned; the memory is shared). */
export interface ShardTask {
  shard: number;
  /** The fit's number of shards (the main thread's phase is done when DONE reaches it). */
  shards: number;
  /** The experts this shard owns: [first, first + count). */
  first: number;
  count: number;
  memory: WasmMemory;
  layout: MixtureLayout;
  config: MixtureConfig;
  optimizer: Required<OptimizerConfig>;
  backend: BackendName;
  blasLibrary?: string;
  kernels: KernelSetName;
  /** Float mode of this thread for the task (a pooled thread may serve fits of either). */
  denormals: DenormalMode;
  port: MessagePort;
  /**
   * Microseconds to poll for the next command before parking in Atomics.waitAsync; 0
   * when the workers and the main thread do not each have a core (polling would then
   * take the CPU the main thread needs between phases).
   */
  pollMicros: number;
}

/** How a shard task ends: stopped by the trainer, or its provider failed to load. */
export type ShardResult = 'stopped' | { initError: WireError };

/** The comlink control API a shard exposes. */
export interface ShardApi {
  /** Load the provider and kernels and start the step loop; resolves to the provider actually loaded. */
  init(): Promise<{ backend: BackendName; detail: string } | { error: WireError }>;
  /** A copy of this shard's experts' parameters. */
  snapshot(): Float32Array;
}

/** Run one shard until STOP; rejects if the step loop throws (the trainer reports it). */
export async function runShard(task: ShardTask): Promise<ShardResult> {
  // Set before the provider loads (threads a library starts inherit it), and kept: this
  // thread runs nothing but the library's compute until the task ends.
  setThreadMode(task.denormals);
  const views = mapViews(task.memory.buffer, task.layout);
  const ctrl = views.control;
  let side: ExpertSide | undefined;
  // Resolves once init has run: true when the provider loaded and the loop may start.
  let initDone!: (ok: boolean) => void;
  const ready = new Promise<boolean>((r) => (initDone = r));
  let initError: WireError | undefined;

  const api: ShardApi = {
    async init() {
      try {
        const provider = await loadExactProvider(task.backend, task.blasLibrary !== undefined ? { blasLibrary: task.blasLibrary } : {});
        const kernels = createKernels(task.memory, task.kernels);
        side = new ExpertSide(provider.sgemm, kernels, { config: task.config, optimizer: task.optimizer, layout: task.layout, shard: task.shard, owns: { first: task.first, count: task.count } }, views);
        initDone(true);
        return { backend: provider.name, detail: provider.detail };
      } catch (err) {
        // The task ends at once (so the runner's close() does not wait out its grace period),
        // and its result carries the error too: piscina may report the task's end before
        // comlink delivers this reply.
        initError = errorToWire(err);
        initDone(false);
        return { error: initError };
      }
    },
    snapshot() {
      const P = views.expertParams.length / task.config.experts;
      return views.expertParams.slice(task.first * P, (task.first + task.count) * P);
    },
  };
  Comlink.expose(api, task.port as unknown as Comlink.Endpoint);
  if (!(await ready)) {
    // Let comlink deliver init's reply before the port closes.
    await new Promise((r) => setImmediate(r));
    task.port.close();
    return { initError: initError! };
  }

  let seen = Atomics.load(ctrl, CTRL.SEQ);
  try {
    for (;;) {
      // The next command usually follows within microseconds (the main thread only
      // combines B×E scalars between phases); waking from a parked wait costs ~50–200 µs
      // here, so poll briefly first where this thread has a core of its own.
      if (!pollFor(ctrl, seen, task.pollMicros)) {
        // waitAsync, not Atomics.wait: a synchronous wait would block this worker's event
        // loop, and the comlink control calls could not be served between steps. The
        // comlink port keeps the worker alive while this wait is pending.
        const w = Atomics.waitAsync(ctrl, CTRL.SEQ, seen);
        if (w.async) await w.value;
      }
      const seq = Atomics.load(ctrl, CTRL.SEQ);
      if (seq === seen) continue;
      seen = seq;
      const cmd = Atomics.load(ctrl, CTRL.CMD);
      if (cmd === CMD.STOP || Atomics.load(ctrl, CTRL.ABORT) !== 0) return 'stopped';
      const step = Atomics.load(ctrl, CTRL.STEP);
      const t0 = performance.now();
      if (cmd === CMD.FORWARD) side!.forward();
      else if (cmd === CMD.BACKWARD) side!.backward();
      else if (cmd === CMD.UPDATE) side!.update(views.hyper[HYPER.LR]!, step);
      views.busy[task.shard * BUSY_SLOTS + cmd] = views.busy[task.shard * BUSY_SLOTS + cmd]! + (performance.now() - t0);
      Atomics.store(ctrl, CTRL.SHARD_DONE_BASE + task.shard, seq);
      // Only the shard that completes the phase wakes the main thread: an earlier shard's
      // notify would wake it to find the phase unfinished and park again (at 2 shards, two
      // wasted wake-ups a step, each a futex wake and an event-loop turn).
      if (Atomics.add(ctrl, CTRL.DONE, 1) + 1 >= task.shards) Atomics.notify(ctrl, CTRL.DONE);
    }
  } finally {
    task.port.close();
    // The thread goes back to the runner, idle, and its views of the session's memory and its
    // kernel instance are garbage. An idle thread allocates nothing, so V8 may not collect
    // them before the thread's next task or its idle timeout (IDLE_MS in threads.ts), which
    // bounds how long a past session's memory is held. The library sets no V8 flag: only
    // where the process was started with V8's gc exposed (node's expose-gc flag, as the
    // soak script does) is that collection run now.
    setImmediate(collectGarbage);
  }
}

/** A full collection in this thread when the process exposes V8's gc (node's expose-gc flag); else nothing. */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc === 'function') gc();
}
