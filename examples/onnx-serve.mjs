// Train briefly, export the mixture to ONNX and serve it with ONNX Runtime (the
// onnxruntime-node package, CPU): the served model takes raw formants in Hz, as predict
// does, and gives the same class probabilities.
//
//   node examples/onnx-serve.mjs [--epochs 20] [--out vowels.onnx]
//
// onnxruntime-node is not a dependency of local-experts: install it next to it, with its
// install script (which downloads GPU extras) skipped, e.g.
//   ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node
// or "allowScripts": { "onnxruntime-node": false } in your package.json (npm 11).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { Mixture, loadVowels } from 'local-experts';

const { values } = parseArgs({
  options: {
    epochs: { type: 'string', default: '20' },
    out: { type: 'string' },
  },
});
const dir = values.out === undefined ? await mkdtemp(join(tmpdir(), 'local-experts-onnx-')) : undefined;
const file = values.out ?? join(dir, 'vowels.onnx');

// 1. Train and export (the file holds the standardisation: it takes raw Hz).
const { train } = await loadVowels({ seed: 1 });
const moe = await Mixture.create({ task: 'classification', inputs: 2, outputs: 4, experts: 4, expert: 'mlp:8', seed: 1, classNames: train.classNames });
// Average adult male formants (Hz) from Peterson & Barney's table, one row per vowel.
const formants = [
  [270, 2290], // iy (heed)
  [390, 1990], // ih (hid)
  [730, 1090], // aa (hod)
  [640, 1190], // ah (hud)
];
let reference;
try {
  await moe.fit(train, { epochs: Number(values.epochs) });
  await writeFile(file, await moe.toOnnx());
  reference = moe.predict(formants);
} finally {
  await moe.close();
}

// 2. Serve: what a server process does with the file alone.
const session = await ort.InferenceSession.create(await readFile(file));
try {
  const x = new ort.Tensor('float32', Float32Array.from(formants.flat()), [formants.length, 2]);
  const { output, gate } = await session.run({ x });
  const C = output.dims[1], E = gate.dims[1];
  let worst = 0;
  for (let j = 0; j < output.data.length; j++) worst = Math.max(worst, Math.abs(output.data[j] - reference.output[j]));
  console.log(`served ${file} (${session.inputNames} → ${session.outputNames}) with ONNX Runtime ${ort.env.versions.node}:`);
  formants.forEach(([f1, f2], r) => {
    const p = Array.from(output.data.subarray(r * C, (r + 1) * C));
    const best = p.indexOf(Math.max(...p));
    const g = Array.from(gate.data.subarray(r * E, (r + 1) * E), (v) => v.toFixed(2)).join(' ');
    console.log(`F1 ${f1} F2 ${f2}: ${train.classNames[best]} (probabilities ${p.map((v) => v.toFixed(3)).join(' ')}; gate ${g})`);
  });
  // Float32 arithmetic in another order: equal to predict within a few units in the last place.
  if (!(worst <= 1e-5)) throw new Error(`ONNX Runtime and predict differ by ${worst}`);
  console.log(`largest difference from predict: ${worst.toExponential(2)}`);
} finally {
  await session.release();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}
