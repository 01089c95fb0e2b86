// Train the paper's vowel mixture with the experts in worker threads, then show how the
// gate divided the vowels between the experts (Jacobs et al. 1991, section 4).
//
//   node examples/vowels-workers.mjs [--epochs 60] [--experts 4] [--workers 2]
import { parseArgs } from 'node:util';
import { Mixture, loadVowels } from 'local-experts';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '60' },
    experts: { type: 'string', default: '4' },
    workers: { type: 'string', default: '2' },
  },
});
const epochs = Number(values.epochs);
const experts = Number(values.experts);
const workers = Number(values.workers);

// Inputs are the formants F1, F2 in Hz; speakers are split so none is on both sides.
const { train, test } = await loadVowels({ seed: 1 });

// `await using` would close it too, but Node 20 does not parse that syntax in plain JS.
const moe = await Mixture.create({
  task: 'classification',
  inputs: train.inputs,
  outputs: train.outputs,
  experts,
  expert: 'linear',
  loss: 'nll',
  seed: 1,
});
try {
  const result = await moe.fit(train, { epochs, batchSize: 32, workers });
  console.log(
    `trained ${result.epochs} epochs on ${result.workers} worker thread(s), backend ${result.backend}, ` +
      `final loss ${result.finalLoss.toFixed(4)}, ${result.seconds.toFixed(2)} s`,
  );

  const ev = moe.evaluate(test);
  console.log(`test accuracy ${(100 * ev.accuracy).toFixed(1)}% on ${ev.n} rows from held-out speakers`);

  // Gate share: each expert's mean gate probability over the test rows. Beside it, the
  // vowels each expert wins (it has the largest gate probability on those rows).
  const { winner } = moe.predict(test.x);
  const names = test.classNames ?? [];
  console.log('expert  gate share  vowels it wins');
  for (let e = 0; e < experts; e++) {
    const counts = new Map();
    for (let r = 0; r < test.n; r++) {
      if (winner[r] !== e) continue;
      const name = names[test.labels[r]] ?? String(test.labels[r]);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    const wins = [...counts].sort((a, b) => b[1] - a[1]).map(([v, c]) => `${v}:${c}`).join(' ') || '-';
    console.log(`${String(e).padStart(6)}  ${(100 * ev.gateShare[e]).toFixed(1).padStart(9)}%  ${wins}`);
  }
} finally {
  await moe.close();
}
