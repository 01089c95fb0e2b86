/** The scaling cost model (bench/cost-model.ts): its inputs from a scaling report, and its formula. */
import { describe, expect, it } from 'vitest';
import { costModelInputs, exchangeBytesPerStep, exchangeMicros, predictRanks, predictScaling, predictStepMicros, rankExpertCounts } from '../cost-model.js';
import type { ScalingReport, ScalingRow } from '../scaling.js';
import { OptionError } from '../../src/index.js';

function row(workers: number, stepMicros: number, compute: [number, number, number], sync: [number, number, number]): ScalingRow {
  const ph = ([forward, backward, update]: [number, number, number]) => ({ forward, backward, update });
  return {
    size: 'medium', workers, batch: 512, steps: 10, stepMicros, rmePercent: 1, samplesPerSecond: 512e6 / stepMicros, speedup: 1, efficiency: 1,
    syncMicros: 0, shardComputeMicros: 0, syncMicrosByPhase: ph(sync), shardComputeMicrosByPhase: ph(compute), atomicsRoundTripMicros: 1, idleRoundTripMicros: 1, suspect: false, busy: false, otherLoad: 0,
  };
}

const report = {
  machine: 'test', cpuModel: 'x', cores: 2, node: 'v20', date: '', backend: 'blas', backendDetail: '', experts: 8, loadAverage: { start: 0, end: 0, ownThreads: 0, otherStart: 0, otherEnd: 0, busy: false }, sizes: [],
  // 1 worker: 100 µs of main-thread work around 1000 + 1000 + 200 µs of compute and 10 µs of sync per phase.
  // 2 workers: each shard's half of the compute 10% slower in forward and backward (κ 1.1), as fast in update.
  rows: [row(1, 2330, [1000, 1000, 200], [10, 10, 10]), row(2, 1360, [550, 550, 100], [40, 50, 60])],
} as ScalingReport;

describe('the scaling cost model', () => {
  it('takes compute and sync per phase from the 1- and 2-worker rows, and the rest as the main thread\'s', () => {
    const m = costModelInputs(report, 'medium');
    expect(m).toMatchObject({ experts: 8, step1Micros: 2330, step2Micros: 1360, mainMicros: 100 });
    expect(m.compute1).toEqual({ forward: 1000, backward: 1000, update: 200 });
    expect(m.contention.forward).toBeCloseTo(1.1, 12);
    expect(m.contention.update).toBeCloseTo(1, 12);
    expect(m.sync2).toEqual({ forward: 40, backward: 50, update: 60 });
    expect(() => costModelInputs({ ...report, rows: report.rows.slice(0, 1) }, 'medium')).toThrow(/no 2-worker row/);
  });

  it('predicts T(W) = M + Σ κ·C·⌈E/W⌉/E + Σ S(W), with the sync constant or linear in W beyond 2', () => {
    const m = costModelInputs(report, 'medium');
    // Itself at 1 and 2 workers: 100 + 2200 + 30, and 100 + 1200 + 150.
    expect(predictStepMicros(m, 1, 8, 'constant')).toBeCloseTo(2330, 9);
    expect(predictStepMicros(m, 2, 8, 'linear')).toBeCloseTo(1450, 9);
    // 16 experts on 8 workers: compute ×2 ÷ 8 (forward and backward ×1.1), sync 150 (constant) or 150 × 8/2 (linear).
    const c8 = (2 * (1000 * 1.1 + 1000 * 1.1 + 200)) / 8;
    expect(predictStepMicros(m, 8, 16, 'constant')).toBeCloseTo(100 + c8 + 150, 9);
    expect(predictStepMicros(m, 8, 16, 'linear')).toBeCloseTo(100 + c8 + 600, 9);
    const p = predictScaling(m, 16, 16, 'constant');
    const t1 = 100 + 4400 + 30, t16 = 100 + (2 * 2400) / 16 + 150;
    expect(p.step1Micros).toBeCloseTo(t1, 9);
    expect(p.speedup).toBeCloseTo(t1 / t16, 9);
    expect(p.efficiency).toBeCloseTo(t1 / (16 * t16), 9);
    // Uneven shards: 16 experts on 6 workers, the slowest holds 3.
    expect(predictStepMicros(m, 6, 16, 'constant')).toBeCloseTo(100 + (2 * 2400 * 3) / 16 + 150, 9);
    expect(() => predictStepMicros(m, 17, 16, 'constant')).toThrow(OptionError);
  });
});

describe("the cost model's exchange between MPI ranks", () => {
  const gaussian = { mixesOutputs: false, gateGradAfterBackward: false };
  const cooperative = { mixesOutputs: true, gateGradAfterBackward: true };

  it('splits the experts among ranks as the trainer does: R·W shards, rank r holding shards r·W … r·W + W − 1', () => {
    expect(rankExpertCounts(8, 2, 1)).toEqual([4, 4]);
    expect(rankExpertCounts(8, 2, 2)).toEqual([4, 4]);
    expect(rankExpertCounts(5, 2, 2)).toEqual([3, 2]);
    expect(rankExpertCounts(7, 3, 1)).toEqual([3, 2, 2]);
    expect(rankExpertCounts(16, 16, 1)).toEqual(Array(16).fill(1));
    expect(() => rankExpertCounts(8, 4, 3)).toThrow(/4 ranks × 3 workers need at least 12 experts/);
  });

  it('counts the bytes per step of each error function: 4·B·(E − E_r)·f + 8 received per rank, 4·B·E·(R−1)·f + 8·R in all', () => {
    // Medium size, 2 ranks: B = 512, E = 8, K = 256.
    const g = exchangeBytesPerStep({ batch: 512, experts: 8, outputs: 256, rankExperts: [4, 4], flags: gaussian });
    expect(g.floatsPerEntry).toBe(1);
    expect(g.collectives.map((c) => [c.what, c.kind])).toEqual([
      ['the scores after FORWARD', 'allgatherv'],
      ['the step agreement after BACKWARD', 'allreduce'],
    ]);
    expect(g.receivedByRank).toEqual([8200, 8200]);
    expect(g.sentByRank).toEqual([8200, 8200]);
    expect(g.total).toBe(16_400);
    const c = exchangeBytesPerStep({ batch: 512, experts: 8, outputs: 256, rankExperts: [4, 4], flags: cooperative });
    expect(c.floatsPerEntry).toBe(258);
    expect(c.collectives.map((x) => x.what)).toEqual(['the scores after FORWARD', 'the outputs after FORWARD', 'the dot products after BACKWARD', 'the step agreement after BACKWARD']);
    expect(c.receivedByRank).toEqual([4 * 512 * 4 * 258 + 8, 4 * 512 * 4 * 258 + 8]);
    expect(c.total).toBe(4 * 512 * 8 * 1 * 258 + 16); // 4,227,088 B: "about 4 MB a step"
    // Uneven: 3 ranks, 7 experts; every rank sends its own entries to the 2 others.
    const u = exchangeBytesPerStep({ batch: 10, experts: 7, outputs: 3, rankExperts: [3, 2, 2], flags: cooperative });
    expect(u.receivedByRank).toEqual([4 * 10 * 4 * 5 + 8, 4 * 10 * 5 * 5 + 8, 4 * 10 * 5 * 5 + 8]);
    expect(u.sentByRank).toEqual([4 * 10 * 3 * 5 * 2 + 8, 4 * 10 * 2 * 5 * 2 + 8, 4 * 10 * 2 * 5 * 2 + 8]);
    expect(u.total).toBe(4 * 10 * 7 * 2 * 5 + 8 * 3);
    expect(u.total).toBe(u.sentByRank.reduce((a, b) => a + b, 0));
    // One rank exchanges nothing; the ranks' experts must add up to E.
    expect(exchangeBytesPerStep({ batch: 512, experts: 8, outputs: 256, rankExperts: [8], flags: cooperative }).total).toBe(0);
    expect(() => exchangeBytesPerStep({ batch: 1, experts: 8, outputs: 1, rankExperts: [4, 3], flags: gaussian })).toThrow(/sum to 7/);
  });

  it('times the exchange as Σ_c (⌈log2 R⌉·α + max_r received ÷ β)', () => {
    const c = exchangeBytesPerStep({ batch: 512, experts: 8, outputs: 256, rankExperts: [4, 4], flags: cooperative });
    // 10 Gb/s = 1250 bytes/µs; 4 collectives, 1 round each at R = 2.
    const bw = 1250;
    const expected = 4 * 20 + (4 * 512 * 4 + 4 * 512 * 4 * 256 + 4 * 512 * 4 + 8) / bw;
    expect(exchangeMicros(c, 2, { gbps: 10, latencyMicros: 20 })).toBeCloseTo(expected, 9);
    // 16 ranks: 4 rounds per collective; the busiest rank's bytes.
    const split = rankExpertCounts(16, 16, 1);
    const g = exchangeBytesPerStep({ batch: 512, experts: 16, outputs: 256, rankExperts: split, flags: gaussian });
    expect(exchangeMicros(g, 16, { gbps: 100, latencyMicros: 2 })).toBeCloseTo(2 * 4 * 2 + (4 * 512 * 15 + 8) / 12_500, 9);
    expect(exchangeMicros(g, 1, { gbps: 100, latencyMicros: 2 })).toBe(0);
    expect(() => exchangeMicros(g, 16, { gbps: 0, latencyMicros: 2 })).toThrow(OptionError);
  });

  it('predicts T(R, W) = M + Σ κ·C·⌈E′/(R·W)⌉/E + Σ S(W) + X(R), κ where a host computes on more than one core', () => {
    const m = costModelInputs(report, 'medium');
    const net = { gbps: 10, latencyMicros: 20 };
    const o = { batch: 512, outputs: 256, flags: gaussian, network: net };
    const x2 = 2 * 20 + (4 * 512 * 4 + 8) / 1250;
    // 2 ranks × 1 worker on one host: 2 cores busy (κ), each rank half the experts, the 1-worker sync.
    const one = predictRanks(m, { ...o, ranks: 2, workers: 1, experts: 8, oneHost: true });
    expect(one.exchangeMicros).toBeCloseTo(x2, 9);
    expect(one.stepMicros).toBeCloseTo(100 + (1000 * 1.1 + 1000 * 1.1 + 200) / 2 + 30 + x2, 9);
    expect(one.bytesPerStep).toBe(16_400);
    // One rank per host: no contention at W = 1.
    const apart = predictRanks(m, { ...o, ranks: 2, workers: 1, experts: 8, oneHost: false });
    expect(apart.stepMicros).toBeCloseTo(100 + 2200 / 2 + 30 + x2, 9);
    expect(apart.speedup).toBeCloseTo(2330 / apart.stepMicros, 9);
    // 16 ranks × 1 worker, 16 experts: compute ×2 ÷ 16, 4 rounds per collective.
    const p16 = predictRanks(m, { ...o, ranks: 16, workers: 1, experts: 16, oneHost: false });
    const x16 = 2 * 4 * 20 + (4 * 512 * 15 + 8) / 1250;
    expect(p16.stepMicros).toBeCloseTo(100 + (2 * 2200) / 16 + 30 + x16, 9);
    expect(p16.samplesPerSecond).toBeCloseTo(512e6 / p16.stepMicros, 6);
    // 4 ranks × 2 workers: the 2-worker sync and κ on each host.
    const p42 = predictRanks(m, { ...o, ranks: 4, workers: 2, experts: 16, oneHost: false });
    expect(p42.stepMicros).toBeCloseTo(100 + (2 * 2400) / 8 + 150 + 2 * 2 * 20 + (4 * 512 * 12 + 8) / 1250, 9);
  });
});
