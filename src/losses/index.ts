/** The error functions by name. */
import type { LossName } from '../model/config.js';
import { categorical } from './categorical.js';
import { competitive } from './competitive.js';
import { cooperative } from './cooperative.js';
import type { ErrorFunction } from './error-function.js';
import { gaussian } from './gaussian.js';

const BY_NAME: Record<LossName, ErrorFunction> = { cooperative, competitive, gaussian, categorical };

/** The error function of a (resolved) loss name. */
export function errorFunction(name: LossName): ErrorFunction {
  return BY_NAME[name];
}

export { meanLoss } from './error-function.js';
export type { ErrorFunction, ExpertLossBlock, MainLossViews } from './error-function.js';
