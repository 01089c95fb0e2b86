import { availableParallelism } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { ShardStallError } from '../src/errors.js';
import { Mixture } from '../src/mixture.js';
import { withFault } from './helpers/faults.js';
import { Rng } from '../src/rng.js';
import type { Dataset } from '../src/data/dataset.js';

// The main thread's waits for a phase of a parallel fit. A timed Atomics.waitAsync leaves a
// delayed task in Node's platform until its timeout passes, even once a notify has ended the
// wait, and Node scans the list of those tasks on every expiry: with a 1 s timeout on every
// wait, a small 2-worker fit (thousands of phases a second) kept thousands of them, and the
// scans took a fifth of its CPU. So a wait is untimed unless it polls near a phase's end
// (then its timeout is about a phase long), and the stall watchdog is one timer per runner.

const realWaitAsync = Atomics.waitAsync;
afterEach(() => {
  Atomics.waitAsync = realWaitAsync;
});

function data(n: number, outputs = 4): Dataset {
  const rng = new Rng(5);
  return { task: 'regression', n, inputs: 2, x: new Float32Array(n * 2).map(() => rng.normal()), outputs, y: new Float32Array(n * outputs).map(() => rng.normal()) };
}

describe("the main thread's waits in a parallel fit", () => {
  it('leave no long timeout behind: every timed wait of 300 small steps is under 100 ms', async () => {
    const timeouts: number[] = [];
    let untimed = 0;
    Atomics.waitAsync = ((typed: Int32Array, index: number, value: number, timeout?: number) => {
      if (timeout === undefined) untimed++;
      else timeouts.push(timeout);
      return timeout === undefined ? realWaitAsync(typed, index, value) : realWaitAsync(typed, index, value, timeout);
    }) as typeof Atomics.waitAsync;
    // As many shards as cores: the main thread never polls (a polling wait is timed to a
    // phase's typical length, which a slow first phase on a loaded machine can make long).
    const workers = Math.max(2, availableParallelism());
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 4, experts: workers, expert: 'linear', seed: 1 });
    await m.fit(data(32 * 300), { epochs: 1, batchSize: 32, workers, shuffle: false });
    Atomics.waitAsync = realWaitAsync;
    await m.close();
    expect(m.training.step).toBe(300);
    // The 1 s timeouts this replaced would fail this (one on every wait that parked).
    expect(timeouts.filter((t) => t >= 100)).toEqual([]);
    expect(untimed + timeouts.length).toBeGreaterThan(0);
  });

  it('wake once a phase: only the shard that completes a phase notifies, so the main thread parks at most once per phase', async () => {
    // As many shards as cores: the main thread never polls, so a wait ends only by a notify
    // (or the 1 s watchdog). An earlier shard's notify used to wake it to find the phase
    // unfinished: about 5 parks a step at 2 shards, where 3 phases need 3.
    const workers = Math.max(2, availableParallelism());
    let parks = 0;
    Atomics.waitAsync = ((typed: Int32Array, index: number, value: number, timeout?: number) => {
      const r = timeout === undefined ? realWaitAsync(typed, index, value) : realWaitAsync(typed, index, value, timeout);
      if (r.async) parks++;
      return r;
    }) as typeof Atomics.waitAsync;
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 4, experts: workers, expert: 'linear', seed: 1 });
    const steps = 300;
    const t0 = performance.now();
    await m.fit(data(32 * steps), { epochs: 1, batchSize: 32, workers, shuffle: false });
    const seconds = (performance.now() - t0) / 1000;
    Atomics.waitAsync = realWaitAsync;
    await m.close();
    expect(m.training.step).toBe(steps);
    // 3 phases a step, plus the shards' start-up and the watchdog's wake-ups (1 a second).
    expect(parks).toBeLessThanOrEqual(3 * steps + 10 + Math.ceil(seconds));
  });

  it('still find a stall where no wait is timed: the watchdog wakes the wait, and the stall is reported within the limit and a period', async () => {
    // As many shards as cores: the main thread never polls, so every wait is untimed and
    // only the liveness watchdog's notify can end the wait on the hung shard.
    const workers = Math.max(2, availableParallelism());
    const m = await Mixture.create({ task: 'regression', inputs: 2, outputs: 2, experts: workers, expert: 'linear', seed: 8 });
    const t0 = performance.now();
    const err = await m.fit(data(100, 2), withFault({ shard: 1, phase: 'forward', kind: 'hang', atStep: 3 }, { epochs: 5, batchSize: 20, workers, stallTimeout: 800 })).then(
      () => undefined,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(ShardStallError);
    expect((err as ShardStallError).phase).toBe('forward');
    expect(m.training.step).toBe(2);
    expect(ms).toBeGreaterThan(800);
    // 800 ms, a watchdog period (200 ms: a quarter of the limit), and the threads' teardown.
    expect(ms).toBeLessThan(8000);
  }, 30_000);
});
