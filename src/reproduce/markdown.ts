/** The markdown report of `moe reproduce jacobs1991`, written from the numbers alone. */
import { machineText } from './machine.js';
import type { Jacobs1991Report } from './jacobs1991.js';
import { GENERALISATION_TOLERANCE_PP, FASTER_RATIO_MAX, HALF_RATIO_MAX, SAME_RATIO, type SystemSummary } from './report.js';
import { alternativeActivation, PAPER_TABLE_1 } from './systems.js';

const pct = (f: number): string => (100 * f).toFixed(1);
const one = (v: number): string => v.toFixed(1);

function tableRows(r: Jacobs1991Report, suffix: string, bases: readonly (keyof typeof PAPER_TABLE_1)[] = ['moe4', 'moe8', 'bp6', 'bp12']): string[] {
  const rows: string[] = [];
  for (const base of bases) {
    const s: SystemSummary | undefined = r.systems[base + suffix];
    if (!s) continue;
    const p = PAPER_TABLE_1[base];
    rows.push(
      `| \`${base + suffix}\` ${s.label} | ${pct(s.trainAccuracy)} ± ${pct(s.trainAccuracySd)} | ${pct(s.testAccuracy)} ± ${pct(s.testAccuracySd)} | ${one(s.epochsMean)} | ${one(s.epochsSd)} | ${s.reachedCriterion}/${s.runs} | ${pct(s.testAccuracyFinal)} ± ${pct(s.testAccuracyFinalSd)} | ${p.label}: ${p.train} | ${p.test} | ${p.epochs} | ${p.epochsSd} |`,
    );
  }
  return rows;
}

const HEADER = [
  '| System | Train % | Test % | Epochs to criterion (mean) | SD | Reached | Test % after the budget | Paper: train % | test % | epochs | SD |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
];

export function markdownReport(r: Jacobs1991Report): string {
  const s = r.settings;
  const f = r.figure;
  const vowels = r.data.classes;
  const all = Object.values(r.systems);
  const finals = all.map((x) => x.trainAccuracyFinal);
  const plateau = `${pct(Math.min(...finals))}–${pct(Math.max(...finals))}%`;
  const epochMeans = all.map((x) => x.epochsMean);
  const alt = alternativeActivation(s.bpActivation);
  const L: string[] = [];
  L.push('# Reproducing Jacobs, Jordan, Nowlan & Hinton (1991): Table 1 and Figure 2', '');
  L.push(`Written by \`${r.command}\`, base seed ${r.seed}, ${r.runs} runs per system on ${r.jobs} worker thread${r.jobs === 1 ? '' : 's'}, compute backend ${r.backend}, on ${machineText(r.machine)}, ${r.seconds.toFixed(1)} s wall time (${r.generated}).`, '');
  L.push(`Paper: ${r.paper}.`, '');

  L.push('## In short', '');
  for (const name of [...new Set(r.verdicts.map((v) => v.comparison))]) {
    const vs = r.verdicts.filter((v) => v.comparison === name);
    const gen = vs.find((v) => v.gapPoints !== undefined);
    const speed = vs.find((v) => v.ratio !== undefined);
    const parts: string[] = [];
    if (gen) parts.push(`equal generalisation **${gen.verdict}** (largest test gap ${Math.abs(gen.gapPoints!).toFixed(1)} points)`);
    if (speed) {
      const [lo, hi] = speed.interval ?? [NaN, NaN];
      const edge = [HALF_RATIO_MAX, FASTER_RATIO_MAX, SAME_RATIO].some((t) => lo < t && t < hi);
      const ci = speed.interval ? `, 95% interval ${lo.toFixed(2)}–${hi.toFixed(2)}${edge ? ', borderline' : ''}` : '';
      parts.push(`"half the epochs" **${speed.verdict}** (ratio ${speed.ratio!.toFixed(2)}${ci}; paper ${(((PAPER_TABLE_1.moe4.epochs + PAPER_TABLE_1.moe8.epochs) / (PAPER_TABLE_1.bp6.epochs + PAPER_TABLE_1.bp12.epochs))).toFixed(2)})`);
    }
    L.push(`- ${name[0]!.toUpperCase()}${name.slice(1)}: ${parts.join('; ')}.`);
  }
  const pattern = Object.entries(r.specialisation).map(([k, sp]) => `${k} ${sp.paperPattern}/${sp.runs}`).join(', ');
  L.push(`- The paper's decomposition ({iy, ih} to one expert, {aa, ah} to another) appeared in ${pattern} runs.`, '');

  L.push('## Setup', '');
  L.push(
    `- Data: the Peterson & Barney (1952) vowels ${vowels.join(', ')}; inputs F1 and F2 in Hz (standardised on the training set inside each model). Speakers are split at random within men, women and children (split seed ${r.seed}): ${r.data.trainSpeakers} speakers (${r.data.trainCases} cases) train, ${r.data.testSpeakers} speakers (${r.data.testCases} cases) test; no voice is on both sides. Every run uses this one split.`,
    `- Systems: mixtures of 4 and 8 linear experts with a linear softmax gate, and backprop nets with 6 and 12 ${s.bpActivation} hidden units (a one-expert mixture: the gate is the constant 1, so training is plain backprop). Each in two forms: **Gaussian** (the paper's form: expert outputs compared with a one-hot target under the error of its eq. 1.3, −log Σ g_i exp(−½‖d − o_i‖²), which for one expert is squared error) and **categorical** (softmax experts under −log Σ g_i P_i(class), which for one expert is cross-entropy). The main keys (moe4, moe8, bp6, bp12) are the paper's form. A sensitivity check adds the paper's form of the backprop nets with ${alt} hidden units (\`bp6_${alt}\`, \`bp12_${alt}\`).`,
    `- Training, the same for every system: Adam, learning rate ${s.lr}, batch ${s.batchSize}, cases reshuffled every epoch, ${s.epochs} epochs, Glorot-uniform initial weights. Run r uses the same seed for every system; the ${r.runs} run seeds are drawn from the base seed (listed in jacobs1991.json).`,
    `- Criterion, the same for every system: at least ${pct(s.criterion)}% of the training cases classified correctly (argmax of the mixture output), measured on the whole training set after each epoch; the epoch count is the first epoch that meets it. Cap: ${s.epochs} epochs; a run that never meets it is counted with ${s.epochs} epochs (the "Reached" column says how many did). Why this one: the systems' losses are on different scales (squared error, Gaussian mixture NLL, cross-entropy), so no loss threshold means the same for all of them, while the fraction of training cases correct does; ${
      s.criterion < Math.min(...finals)
        ? `and ${pct(s.criterion)}% is below the ${plateau} training accuracy the systems' means end at after ${s.epochs} epochs here, as the paper's criterion sat at the 88% its systems all ended at: it measures the time to learn the task, not the time to over-fit it (a criterion above a system's plateau would measure the cap instead).`
        : `but here ${pct(s.criterion)}% is not below every system's final training accuracy (means ${plateau} after ${s.epochs} epochs), so for some systems the epoch count measures the cap more than the learning.`
    }`,
    `- Train % and test % are those of the weights at the criterion epoch (the paper stopped training there), or at the cap for a run that never met it; "Test % after the budget" is after all ${s.epochs} epochs. Mean ± sample SD over runs.`,
    '',
  );

  L.push("## Table 1: the paper's form (one-hot targets, Gaussian error)", '', ...HEADER, ...tableRows(r, ''), '');
  L.push('## The same with softmax experts and the categorical NLL', '', ...HEADER, ...tableRows(r, '_categorical'), '');
  L.push(`## Sensitivity: the paper's form with ${alt} backprop nets`, '', ...HEADER, ...tableRows(r, `_${alt}`, ['bp6', 'bp12']), '');
  L.push("The paper's columns are its Table 1 (25 runs each, its own optimiser and criterion, so its epoch counts are in its units, not ours: compare ratios, not counts). They were transcribed from the paper's Table 1 without a copy of the paper at hand to check them against.", '');

  L.push("## Against the paper's claims", '');
  L.push(
    `Rules: "about equally well" holds when every mixture's mean test accuracy is within ${GENERALISATION_TOLERANCE_PP} points of every backprop net's; "about half as many epochs" holds when the mixtures' mean epochs are at most ${HALF_RATIO_MAX} of the backprop nets' (up to ${FASTER_RATIO_MAX}: faster, but not half; from ${FASTER_RATIO_MAX} to ${SAME_RATIO}: about as many). Each epoch ratio carries a 95% percentile bootstrap interval over runs (2000 resamples of each system's runs).`,
    '',
  );
  for (const name of [...new Set(r.verdicts.map((v) => v.comparison))]) {
    L.push(`**${name[0]!.toUpperCase()}${name.slice(1)}**`, '');
    for (const v of r.verdicts.filter((x) => x.comparison === name)) L.push(`- *${v.claim}* ${v.text}`);
    L.push('');
  }
  L.push(
    `The paper's form is the first: its mixtures have linear experts trained on the error of its eq. 1.3, which is the Gaussian error here; the categorical form is the modern reading of the same mixture for classification. The last comparison swaps the backprop nets' hidden units (${alt} for ${s.bpActivation}) to show how much the speed verdict rests on that choice.`,
    '',
  );

  L.push('## What the experts specialised in', '');
  L.push(
    `The figure's run (\`${f.key}\`, run ${f.run + 1}, seed ${f.seed}, after ${f.epochs} epochs): mean gate probability of each expert over each vowel's training cases, in %, and the training cases each expert wins under the gate.`,
    '',
  );
  L.push(`| Expert | ${vowels.join(' | ')} | cases won |`, `| --- | ${vowels.map(() => '---').join(' | ')} | --- |`);
  for (let i = 0; i < f.experts; i++) {
    L.push(`| expert ${i + 1} | ${vowels.map((_, v) => pct(f.shareByVowel[v]![i]!)).join(' | ')} | ${f.casesWon[i]} |`);
  }
  L.push('');
  L.push(
    'Over all runs: "pairs separated" counts runs whose expert with the most gate weight on {iy, ih} is not the one with the most on {aa, ah}; "pairs kept together" counts runs where iy and ih go mostly to one expert and aa and ah mostly to one expert; the paper\'s decomposition is both at once.',
    '',
    '| Mixture | Runs | Pairs separated | Pairs kept together | Both (the paper\'s split) |',
    '| --- | --- | --- | --- | --- |',
  );
  for (const [k, sp] of Object.entries(r.specialisation)) L.push(`| \`${k}\` | ${sp.runs} | ${sp.pairsSeparated} | ${sp.pairsKeptTogether} | ${sp.paperPattern} |`);
  L.push('');

  L.push('## Figure 2 analog', '');
  L.push(r.files.some((p) => p.endsWith('jacobs1991.png')) ? '![Figure 2 analog](jacobs1991.png)' : '![Figure 2 analog](jacobs1991.svg)', '');
  L.push(
    `Every case of the four vowels in the F1–F2 plane (filled: training speakers, hollow: test speakers). Shading: the expert the gate weights most, evaluated on a ${f.grid[0]}×${f.grid[1]} grid through the model's own predict; dashed: the exact boundaries of the linear gate; coloured lines: for each expert that wins at least one training case (${f.shown.map((i) => `expert ${i + 1}`).join(', ')}), the lines where its two largest outputs tie, in Hz, labelled with the two vowels it separates there. The paper's Figure 2 draws the same kind of lines, expert and gate decision lines of a trained 4-expert system in this plane. Vector version: [jacobs1991.svg](jacobs1991.svg).`,
    '',
  );
  L.push('## Learning curves', '');
  L.push(r.files.some((p) => p.endsWith('jacobs1991-curves.png')) ? '![Learning curves](jacobs1991-curves.png)' : '![Learning curves](jacobs1991-curves.svg)', '');
  L.push('Mean training accuracy after each epoch over all runs of each system (log epoch axis); the dotted line is the criterion.', '');

  L.push('## Differences from the paper', '');
  L.push(
    `- Optimiser: the paper's epoch counts (over a thousand) come from its own gradient-descent settings; here every system uses the same Adam settings, with which the systems' mean epochs to the criterion range from ${one(Math.min(...epochMeans))} to ${one(Math.max(...epochMeans))}. Only the ratio between systems is comparable.`,
    "- Split: the paper's exact train/test speakers are not known here; this split is random by speaker, stratified by speaker type, half the speakers each side.",
    "- The paper's backprop nets are read as logistic hidden units with squared error on one-hot targets (the Gaussian form above); the categorical rows replace that with softmax outputs and cross-entropy.",
  );
  if (r.pngNote) L.push(`- ${r.pngNote}`);
  L.push('');
  return L.join('\n');
}
