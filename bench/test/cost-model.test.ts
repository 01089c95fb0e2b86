/** The scaling cost model (bench/cost-model.ts): its inputs from a scaling report, and its formula. */
import { describe, expect, it } from 'vitest';
import { costModelInputs, predictScaling, predictStepMicros } from '../cost-model.js';
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
