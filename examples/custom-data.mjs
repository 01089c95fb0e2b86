// Fit a mixture to your own data held in Float32Arrays: a noisy piecewise-linear curve
// with three regimes, which three linear experts can split between them.
//
//   node examples/custom-data.mjs [--rows 2000] [--epochs 150] [--workers 0]
import { parseArgs } from 'node:util';
import { Mixture, Rng, validateDataset } from 'local-experts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '2000' },
    epochs: { type: 'string', default: '150' },
    workers: { type: 'string', default: '0' },
  },
});
const n = Number(values.rows);

// y = 2x + 3 for x < −1, −x on [−1, 1), 1.5x − 2.5 from 1 on: continuous, three slopes.
const truth = (x) => (x < -1 ? 2 * x + 3 : x < 1 ? -x : 1.5 * x - 2.5);
const rng = new Rng(7);
const x = new Float32Array(n); // n×1, row-major
const y = new Float32Array(n); // n×1
for (let r = 0; r < n; r++) {
  x[r] = -3 + 6 * rng.next();
  y[r] = truth(x[r]) + 0.05 * rng.normal();
}
// A Dataset is plain data: shapes, and the arrays in original units (the mixture
// standardises inputs and targets itself and stores the statistics with the model).
const data = { task: 'regression', n, inputs: 1, outputs: 1, x, y, featureNames: ['x'], targetNames: ['y'] };
validateDataset(data); // throws a DataError naming the first bad row, if any

const moe = await Mixture.create({ task: 'regression', inputs: 1, outputs: 1, experts: 3, expert: 'linear', loss: 'gaussian', seed: 3 });
try {
  const fit = await moe.fit(data, { epochs: Number(values.epochs), batchSize: 64, validationSplit: 0.2, workers: Number(values.workers) });
  const ev = moe.evaluate(data);
  console.log(`${fit.epochs} epochs (${fit.stopReason}), backend ${fit.backend}, MSE ${ev.mse.toFixed(4)} (noise variance 0.0025)`);
  console.log(`gate share per expert: ${ev.gateShare.map((s) => `${(100 * s).toFixed(1)}%`).join(', ')}`);

  // Which expert the gate picks along x, and the slope of that expert's line there.
  const grid = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5];
  const p = moe.predict(grid.map((v) => [v]));
  const q = moe.predict(grid.map((v) => [v + 0.01]));
  console.log('     x  expert  slope  predicted  true');
  grid.forEach((v, r) => {
    const e = p.winner[r];
    const slope = (q.experts[e * grid.length + r] - p.experts[e * grid.length + r]) / 0.01;
    console.log(`${v.toFixed(1).padStart(6)}  ${String(e).padStart(6)}  ${slope.toFixed(2).padStart(5)}  ${p.output[r].toFixed(3).padStart(9)}  ${truth(v).toFixed(3).padStart(5)}`);
  });
} finally {
  await moe.close();
}
