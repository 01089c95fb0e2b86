// Train, save to a model file, load it back (as another process would), predict, and
// resume training where the saved run stopped.
//
//   node examples/save-load-predict.mjs [--epochs 40] [--dir <folder for the model file>]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Mixture, loadVowels } from 'local-experts';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '40' },
    dir: { type: 'string' },
  },
});
const epochs = Number(values.epochs);
const dir = values.dir ?? (await mkdtemp(join(tmpdir(), 'local-experts-example-')));
const file = join(dir, 'vowels.moe.json');

const { train, test } = await loadVowels({ seed: 1 });
// Average adult male formants (Hz) from Peterson & Barney's table, one row per vowel.
const formants = [
  [270, 2290], // iy (heed)
  [390, 1990], // ih (hid)
  [730, 1090], // aa (hod)
  [640, 1190], // ah (hud)
];
let before;
const moe = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4, seed: 1 });
try {
  await moe.fit(train, { epochs });
  await moe.save(file);
  before = moe.predict(formants).output;
  console.log(`saved after ${epochs} epochs to ${file}; test accuracy ${(100 * moe.evaluate(test).accuracy).toFixed(1)}%`);
} finally {
  await moe.close();
}

const loaded = await Mixture.load(file);
try {
  const p = loaded.predict(formants); // inputs in Hz: the model file carries the standardisation
  const same = p.output.every((v, j) => v === before[j]);
  if (!same) throw new Error('the loaded model predicts differently from the saved one');
  console.log('loaded model predicts exactly what the saved one did:');
  const classes = loaded.classNames ?? train.classNames ?? [];
  const C = loaded.config.outputs;
  formants.forEach(([f1, f2], r) => {
    const probs = Array.from(p.output.subarray(r * C, (r + 1) * C), (v) => v.toFixed(2)).join(' ');
    console.log(`F1 ${f1} F2 ${f2}: ${classes[p.labels[r]]} (probabilities ${probs}; expert ${p.winner[r]})`);
  });

  // The file holds the optimiser and shuffle state too, so training picks up where it stopped.
  const more = await loaded.fit(train, { epochs: 10 });
  const last = more.history.at(-1);
  console.log(`resumed: epochs ${more.history[0].epoch}–${last.epoch}, loss ${last.loss.toFixed(4)}; test accuracy ${(100 * loaded.evaluate(test).accuracy).toFixed(1)}%`);
} finally {
  await loaded.close();
  if (values.dir === undefined) await rm(dir, { recursive: true, force: true });
}
