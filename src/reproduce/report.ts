/**
 * From run results to the table, the verdicts against the paper's claims and the
 * markdown report. Every sentence about the outcome is generated from the numbers.
 */
import { PAPER_VOWELS } from '../data/vowels.js';
import { Rng } from '../rng.js';
import type { RunResult } from './run.js';
import { mean, median, meanSeries, sd } from './stats.js';
import { PAPER_TABLE_1, type SystemSpec } from './systems.js';

/** Mean and sample SD over runs of one system. Accuracies are fractions in [0, 1]. */
export interface SystemSummary {
  label: string;
  kind: 'mixture' | 'backprop';
  form: 'gaussian' | 'categorical';
  runs: number;
  /** Runs that met the criterion within the cap (the others count with the cap as their epochs). */
  reachedCriterion: number;
  /** At the epoch each run met the criterion (or at the cap): the paper stopped there. */
  trainAccuracy: number;
  trainAccuracySd: number;
  testAccuracy: number;
  testAccuracySd: number;
  epochsMean: number;
  epochsSd: number;
  epochsMedian: number;
  /** After the whole budget of epochs. */
  trainAccuracyFinal: number;
  trainAccuracyFinalSd: number;
  testAccuracyFinal: number;
  testAccuracyFinalSd: number;
  /** Mean training wall time of one run (s). */
  secondsMean: number;
}

/** Summarise the runs of one system. */
export function summarise(system: SystemSpec, runs: readonly RunResult[]): SystemSummary {
  const pick = (f: (r: RunResult) => number): number[] => runs.map(f);
  const epochs = pick((r) => r.epochs);
  return {
    label: system.label,
    kind: system.kind,
    form: system.loss,
    runs: runs.length,
    reachedCriterion: runs.filter((r) => r.reachedCriterion).length,
    trainAccuracy: mean(pick((r) => r.trainAccuracy)),
    trainAccuracySd: sd(pick((r) => r.trainAccuracy)),
    testAccuracy: mean(pick((r) => r.testAccuracy)),
    testAccuracySd: sd(pick((r) => r.testAccuracy)),
    epochsMean: mean(epochs),
    epochsSd: sd(epochs),
    epochsMedian: median(epochs),
    trainAccuracyFinal: mean(pick((r) => r.trainAccuracyFinal)),
    trainAccuracyFinalSd: sd(pick((r) => r.trainAccuracyFinal)),
    testAccuracyFinal: mean(pick((r) => r.testAccuracyFinal)),
    testAccuracyFinalSd: sd(pick((r) => r.testAccuracyFinal)),
    secondsMean: mean(pick((r) => r.seconds)),
  };
}

/** Mean training accuracy per epoch over a system's runs. */
export function meanCurve(runs: readonly RunResult[]): number[] {
  return meanSeries(runs.map((r) => r.curve.trainAccuracy));
}

/** How often a mixture's gate split the vowels the way the paper reports. */
export interface Specialisation {
  runs: number;
  /** Runs whose expert with the most gate weight on {iy, ih} differs from the one on {aa, ah}. */
  pairsSeparated: number;
  /** Runs where iy and ih go mostly to one expert, and aa and ah mostly to one expert. */
  pairsKeptTogether: number;
  /** Both at once: the paper's decomposition. */
  paperPattern: number;
}

const argmax = (v: readonly number[]): number => v.reduce((b, x, i) => (x > v[b]! ? i : b), 0);

/** Whether one run's gate shares ([vowel][expert], vowels in {@link PAPER_VOWELS} order) show the paper's split. */
export function pairSplit(share: readonly (readonly number[])[], classNames: readonly string[] = PAPER_VOWELS): { separated: boolean; together: boolean } {
  const row = (v: string): readonly number[] => {
    const k = classNames.indexOf(v);
    if (k < 0 || !share[k]) throw new RangeError(`no gate shares for vowel ${v}`);
    return share[k]!;
  };
  const [iy, ih, aa, ah] = PAPER_VOWELS.map(row) as [readonly number[], readonly number[], readonly number[], readonly number[]];
  const front = argmax(iy.map((s, i) => s + ih[i]!));
  const back = argmax(aa.map((s, i) => s + ah[i]!));
  return { separated: front !== back, together: argmax(iy) === argmax(ih) && argmax(aa) === argmax(ah) };
}

export function specialisation(runs: readonly RunResult[], classNames: readonly string[] = PAPER_VOWELS): Specialisation {
  const s = { runs: 0, pairsSeparated: 0, pairsKeptTogether: 0, paperPattern: 0 };
  for (const r of runs) {
    if (!r.gateShareByVowel) continue;
    const p = pairSplit(r.gateShareByVowel, classNames);
    s.runs++;
    if (p.separated) s.pairsSeparated++;
    if (p.together) s.pairsKeptTogether++;
    if (p.separated && p.together) s.paperPattern++;
  }
  return s;
}

/** A claim of the paper set against the numbers. */
export interface Verdict {
  claim: string;
  /** Which systems were compared, e.g. "paper's form (Gaussian error)". */
  comparison: string;
  verdict: 'reproduces' | 'partly' | 'does not reproduce';
  text: string;
  /** Generalisation: the largest mean test-accuracy gap, mixture − backprop, in points. */
  gapPoints?: number;
  /** Speed: mixtures' mean epochs ÷ backprop nets' mean epochs, and its bootstrap interval. */
  ratio?: number;
  interval?: [number, number];
}

/** The mixtures and backprop nets one set of verdicts compares. */
export interface Comparison {
  name: string;
  mixtures: [string, string];
  backprop: [string, string];
}

/** Test accuracies within this many percentage points count as "about equally well". */
export const GENERALISATION_TOLERANCE_PP = 2;
/** Epoch ratio (mixtures ÷ backprop) up to which "about half as many epochs" holds. */
export const HALF_RATIO_MAX = 0.65;
/** Above HALF_RATIO_MAX and up to this, the mixtures are faster but not by half. */
export const FASTER_RATIO_MAX = 0.85;
/** Ratios from FASTER_RATIO_MAX up to this read as "about as many epochs". */
export const SAME_RATIO = 1.18;

const pct = (f: number, digits = 1): string => (100 * f).toFixed(digits);
const num = (v: number, digits = 1): string => v.toFixed(digits);

/**
 * Percentile bootstrap interval (95%) of mean(mixtures' mean epochs) ÷ mean(backprop nets'
 * mean epochs): each system's runs are resampled with replacement, `draws` times, from a
 * fixed seed so the report is reproducible.
 */
export function bootstrapRatio(mixtures: readonly (readonly number[])[], backprop: readonly (readonly number[])[], draws = 2000, seed = 1): [number, number] {
  const rng = new Rng(seed);
  const resampledMean = (v: readonly number[]): number => {
    let s = 0;
    for (let i = 0; i < v.length; i++) s += v[rng.int(v.length)]!;
    return s / v.length;
  };
  const ratios: number[] = [];
  for (let b = 0; b < draws; b++) ratios.push(mean(mixtures.map(resampledMean)) / mean(backprop.map(resampledMean)));
  ratios.sort((a, b) => a - b);
  return [ratios[Math.floor(0.025 * (draws - 1))]!, ratios[Math.ceil(0.975 * (draws - 1))]!];
}

/**
 * The paper's two claims (the mixtures generalise about as well as backprop, and reach
 * the criterion in about half as many epochs), checked for two mixtures against two
 * backprop nets. With `epochsByKey` (each system's per-run epochs) the speed verdict
 * carries a bootstrap interval, and says so when the interval straddles a cut-off.
 */
export function verdicts(systems: Readonly<Record<string, SystemSummary>>, c: Comparison, epochsByKey?: Readonly<Record<string, readonly number[]>>): Verdict[] {
  const get = (k: string): readonly [string, SystemSummary] => {
    const s = systems[k];
    if (!s) throw new RangeError(`no results for ${k}`);
    return [k, s];
  };
  const moe = c.mixtures.map(get);
  const bp = c.backprop.map(get);
  const out: Verdict[] = [];

  // Generalisation.
  const gaps = moe.flatMap(([, m]) => bp.map(([, b]) => 100 * (m.testAccuracy - b.testAccuracy)));
  const worst = gaps.reduce((a, g) => (Math.abs(g) > Math.abs(a) ? g : a), 0);
  const acc = [...moe, ...bp].map(([k, s]) => `${k} ${pct(s.testAccuracy)} ± ${pct(s.testAccuracySd)}%`).join(', ');
  const same = Math.abs(worst) <= GENERALISATION_TOLERANCE_PP;
  out.push({
    claim: 'The mixtures and the backprop nets generalise about equally well.',
    comparison: c.name,
    verdict: same ? 'reproduces' : 'does not reproduce',
    gapPoints: worst,
    text: same
      ? `Reproduces: test accuracy ${acc}; the largest gap between a mixture and a backprop net is ${num(Math.abs(worst))} points (within the ${GENERALISATION_TOLERANCE_PP}-point tolerance). The paper had 90% for all four.`
      : `Does not reproduce: test accuracy ${acc}; the ${worst > 0 ? 'mixtures generalise better' : 'backprop nets generalise better'}, by up to ${num(Math.abs(worst))} points (tolerance ${GENERALISATION_TOLERANCE_PP}). The paper had 90% for all four.`,
  });

  // Speed to the criterion.
  const moeEpochs = mean(moe.map(([, s]) => s.epochsMean));
  const bpEpochs = mean(bp.map(([, s]) => s.epochsMean));
  const ratio = moeEpochs / bpEpochs;
  const paperRatio = (PAPER_TABLE_1.moe4.epochs + PAPER_TABLE_1.moe8.epochs) / (PAPER_TABLE_1.bp6.epochs + PAPER_TABLE_1.bp12.epochs);
  const each = [...moe, ...bp].map(([k, s]) => `${k} ${num(s.epochsMean)} ± ${num(s.epochsSd)}`).join(', ');
  const pairs = moe.flatMap(([mk, m]) => bp.map(([bk, b]) => `${mk}/${bk} ${(m.epochsMean / b.epochsMean).toFixed(2)}`)).join(', ');
  const capped = [...moe, ...bp].filter(([, s]) => s.reachedCriterion < s.runs).map(([k, s]) => `${k} ${s.runs - s.reachedCriterion} of ${s.runs}`);
  const cappedText = capped.length
    ? ` Runs that never met the criterion count with the cap as their epochs (${capped.join('; ')}), so those means are lower bounds.`
    : ' Every run met the criterion.';
  let verdict: Verdict['verdict'];
  let lead: string;
  if (ratio <= HALF_RATIO_MAX) {
    verdict = 'reproduces';
    lead = `Reproduces: the mixtures needed ${ratio.toFixed(2)} times the backprop nets' epochs, about half or fewer`;
  } else if (ratio <= FASTER_RATIO_MAX) {
    verdict = 'partly';
    lead = `Partly: the mixtures were faster, at ${ratio.toFixed(2)} times the backprop nets' epochs, but not about half`;
  } else if (ratio < SAME_RATIO) {
    verdict = 'does not reproduce';
    lead = `Does not reproduce: the mixtures needed about as many epochs as the backprop nets (ratio ${ratio.toFixed(2)})`;
  } else {
    verdict = 'does not reproduce';
    lead = `Does not reproduce: the mixtures needed more epochs than the backprop nets (ratio ${ratio.toFixed(2)})`;
  }
  let interval = '';
  let bounds: [number, number] | undefined;
  const runsOf = (k: string): readonly number[] | undefined => epochsByKey?.[k];
  if (epochsByKey && [...c.mixtures, ...c.backprop].every((k) => (runsOf(k)?.length ?? 0) > 1)) {
    const [lo, hi] = (bounds = bootstrapRatio(c.mixtures.map((k) => runsOf(k)!), c.backprop.map((k) => runsOf(k)!)));
    const straddles = [HALF_RATIO_MAX, FASTER_RATIO_MAX, SAME_RATIO].filter((t) => lo < t && t < hi);
    interval = ` (95% bootstrap interval over runs ${lo.toFixed(2)}–${hi.toFixed(2)}${straddles.length ? `, which spans the ${straddles.map((t) => t.toFixed(2)).join(' and ')} cut-off${straddles.length > 1 ? 's' : ''}: a borderline verdict` : ''})`;
  }
  out.push({
    claim: 'The mixtures reach the error criterion in about half as many epochs as backprop.',
    comparison: c.name,
    verdict,
    ratio,
    ...(bounds ? { interval: bounds } : {}),
    text: `${lead}${interval}; the paper's ratio was ${paperRatio.toFixed(2)}. Epochs to the criterion (mean ± SD): ${each}; ratio per pair: ${pairs}.${cappedText}`,
  });
  return out;
}

/** The comparisons the report makes: the paper's form, the categorical form, and the paper's form against the other backprop activation. */
export function comparisons(bpActivation: string, alt: string): Comparison[] {
  return [
    { name: `paper's form (Gaussian error), ${bpActivation} backprop nets`, mixtures: ['moe4', 'moe8'], backprop: ['bp6', 'bp12'] },
    { name: `categorical form, ${bpActivation} backprop nets`, mixtures: ['moe4_categorical', 'moe8_categorical'], backprop: ['bp6_categorical', 'bp12_categorical'] },
    { name: `paper's form (Gaussian error), ${alt} backprop nets (sensitivity)`, mixtures: ['moe4', 'moe8'], backprop: [`bp6_${alt}`, `bp12_${alt}`] },
  ];
}
