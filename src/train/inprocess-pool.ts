import type { Sgemm } from '../compute/provider.js';
import type { MixtureViews } from '../memory/layout.js';
import type { MixtureConfig } from '../model/config.js';
import { ExpertGroup } from '../model/expert-group.js';
import type { OptimizerConfig } from '../optim/optimizers.js';
import type { ExpertPool } from './step.js';

/** The reference pool: every expert on the calling thread, each phase run in `begin*`. */
export class InProcessPool implements ExpertPool {
  readonly workers = 0;
  private readonly group: ExpertGroup;
  constructor(gemm: Sgemm, config: MixtureConfig, optimizer: Required<OptimizerConfig>, views: MixtureViews, maxBatch: number) {
    this.group = new ExpertGroup(gemm, { config, optimizer, first: 0, count: config.experts, maxBatch }, views);
  }
  beginForward(rows: number): void {
    this.group.forward(rows);
  }
  finishForward(): void {}
  beginBackward(rows: number): void {
    this.group.backward(rows);
  }
  finishBackward(): void {}
  beginUpdate(lr: number, step: number): void {
    this.group.update(lr, step);
  }
  finishUpdate(): void {}
}
