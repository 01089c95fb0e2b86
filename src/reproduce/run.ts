/**
 * One independent run: one system trained from one seed, in-process, with the criterion
 * checked after every epoch. This is what a reproduce worker executes per task; the
 * result is plain data (structured-clone safe).
 */
import type { BackendRequest } from '../compute/provider.js';
import type { Dataset } from '../data/dataset.js';
import { loadVowels, type VowelSplit } from '../data/vowels.js';
import { errorToWire, type WireError } from '../errors.js';
import { Mixture } from '../mixture.js';
import { figureData, type FigureData } from './figure.js';
import { CriterionTracker } from './stats.js';
import type { SystemSpec } from './systems.js';

/** Training settings shared by every system (the comparison is only fair if they are). */
export interface TrainSettings {
  optimizer: 'adam' | 'sgd' | 'momentum';
  lr: number;
  batchSize: number;
  /** Epochs every run trains for; also the criterion's cap. */
  epochs: number;
  /** Fraction of training cases correct that counts as "reached the criterion". */
  criterion: number;
  /** Seed of the speaker split (the same split for every run). */
  splitSeed: number;
  backend?: BackendRequest;
}

/** One task for a worker. */
export interface RunTask {
  system: SystemSpec;
  /** 0-based run index. */
  run: number;
  /** Seed of initialisation and shuffles; run r uses the same seed for every system. */
  seed: number;
  settings: TrainSettings;
  /** Also compute the Figure-2 data from the trained model. */
  figure?: boolean;
}

/** What one run reports. Accuracies are fractions in [0, 1]. */
export interface RunResult {
  key: string;
  run: number;
  seed: number;
  reachedCriterion: boolean;
  /** Epoch the criterion was first met, or the cap. */
  epochs: number;
  /** Accuracies of the weights at that epoch (the paper stopped training there). */
  trainAccuracy: number;
  testAccuracy: number;
  /** Accuracies after the whole budget of epochs. */
  trainAccuracyFinal: number;
  testAccuracyFinal: number;
  /** Per epoch: training accuracy on the whole training set after the epoch, and mean batch loss. */
  curve: { trainAccuracy: number[]; loss: number[] };
  /** Mixtures: mean gate probability of each expert over each vowel's training cases, [vowel][expert], after the budget. */
  gateShareByVowel?: number[][];
  backend: string;
  /** Wall time of the training (s). */
  seconds: number;
  figure?: FigureData;
}

const splits = new Map<number, Promise<VowelSplit>>();

/** The vowel split, loaded once per thread and seed. */
export function vowelSplit(seed: number): Promise<VowelSplit> {
  let p = splits.get(seed);
  if (!p) {
    p = loadVowels({ seed });
    splits.set(seed, p);
    p.catch(() => splits.delete(seed));
  }
  return p;
}

/** Mean gate probability per (class, expert) over a labelled set. */
export function gateShareByClass(m: Mixture, data: Dataset): number[][] {
  const E = m.config.experts, K = m.config.outputs;
  const p = m.predict(data.x);
  const share = Array.from({ length: K }, () => new Array<number>(E).fill(0));
  const count = new Array<number>(K).fill(0);
  for (let r = 0; r < data.n; r++) {
    const c = data.labels![r]!;
    count[c]!++;
    for (let i = 0; i < E; i++) share[c]![i]! += p.gate[r * E + i]!;
  }
  return share.map((row, c) => row.map((s) => (count[c]! > 0 ? s / count[c]! : 0)));
}

/** Train one system from one seed and measure it (in-process: runs are the parallel unit). */
export async function runOne(task: RunTask): Promise<RunResult> {
  const { system, settings: s } = task;
  const split = await vowelSplit(s.splitSeed);
  const { train, test } = split;
  const m = await Mixture.create({
    task: 'classification',
    inputs: train.inputs,
    outputs: train.outputs,
    experts: system.experts,
    expert: system.expert,
    loss: system.loss,
    optimizer: s.optimizer,
    lr: s.lr,
    seed: task.seed,
    ...(s.backend ? { backend: s.backend } : {}),
    ...(train.classNames ? { classNames: train.classNames } : {}),
    ...(train.featureNames ? { featureNames: train.featureNames } : {}),
  });
  const tracker = new CriterionTracker(s.criterion, s.epochs);
  const curve = { trainAccuracy: [] as number[], loss: [] as number[] };
  let atCriterion: { train: number; test: number } | undefined;
  const fit = await m.fit(train, {
    epochs: s.epochs,
    batchSize: s.batchSize,
    workers: 0,
    onEpoch: (e) => {
      const acc = m.evaluate(train).accuracy!;
      curve.trainAccuracy.push(acc);
      curve.loss.push(e.loss);
      if (tracker.observe(acc)) atCriterion = { train: acc, test: m.evaluate(test).accuracy! };
    },
  });
  const trainFinal = curve.trainAccuracy.at(-1) ?? NaN;
  const testFinal = m.evaluate(test).accuracy!;
  const outcome = tracker.outcome();
  const result: RunResult = {
    key: system.key,
    run: task.run,
    seed: task.seed,
    reachedCriterion: outcome.reached,
    epochs: outcome.epochs,
    // A run that never reached the criterion stopped at the cap, i.e. with the final weights.
    trainAccuracy: atCriterion?.train ?? trainFinal,
    testAccuracy: atCriterion?.test ?? testFinal,
    trainAccuracyFinal: trainFinal,
    testAccuracyFinal: testFinal,
    curve,
    backend: fit.backend,
    seconds: fit.seconds,
  };
  if (system.kind === 'mixture') result.gateShareByVowel = gateShareByClass(m, train);
  if (task.figure) result.figure = figureData(m, split, { key: system.key, run: task.run, seed: task.seed, epochs: s.epochs });
  await m.close();
  return result;
}

/**
 * What a reproduce worker returns: the result, or the error in wire form, since an
 * error's class and code do not survive the thread boundary (the caller rebuilds it with
 * errorFromWire).
 */
export type RunReply = { result: RunResult } | { error: WireError };

/** {@link runOne} for a worker thread: never rejects, failures come back as `{ error }`. */
export async function runOneReply(task: RunTask): Promise<RunReply> {
  try {
    return { result: await runOne(task) };
  } catch (err) {
    return { error: errorToWire(err) };
  }
}
