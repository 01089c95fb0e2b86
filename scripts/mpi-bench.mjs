// MPI overhead on one host: the medium benchmark size (8 experts MLP 256→512→256, batch
// 512, Gaussian NLL, Adam, learnable data) trained for a fixed number of steps, as R ranks
// × W workers (run under `mpiexec -n R`) or as one process with W workers (run plainly).
// Prints one JSON line (rank 0): samples/s of the timed epochs, and per step the time this
// rank waited in MPI exchanges and the bytes it received.
// Usage: [mpiexec -n R] node scripts/mpi-bench.mjs WORKERS [EPOCHS] [--mpi]
import { availableParallelism, cpus } from 'node:os';
import { Mixture, datasetFromArrays } from '../dist/src/index.js';

const args = process.argv.slice(2);
const mpi = args.includes('--mpi');
const [workers = '1', epochs = '4'] = args.filter((a) => !a.startsWith('--'));
const D = 256, K = 256, E = 8, B = 512, n = 4 * B;
let seed = 7;
const rand = () => ((seed = (seed * 16807) % 2147483647), seed / 2147483647 - 0.5);
const W = Array.from({ length: 4 }, () => Array.from({ length: D * K / 64 }, rand));
const xs = [], ys = [];
for (let i = 0; i < n; i++) {
  const x = Array.from({ length: D }, rand);
  const region = (x[0] > 0 ? 1 : 0) + (x[1] > 0 ? 2 : 0);
  ys.push(Array.from({ length: K }, (_, k) => { let s = 0; for (let j = 0; j < 64; j++) s += x[(k + j * 4) % D] * W[region][(k * 64 + j) % W[region].length]; return Math.tanh(s); }));
  xs.push(x);
}
const data = datasetFromArrays('regression', xs, ys);
const m = await Mixture.create({ task: 'regression', inputs: D, outputs: K, experts: E, expert: 'mlp:512', seed: 1 });
// One warm-up epoch (threads, first touches), then the timed ones.
await m.fit(data, { epochs: 1, batchSize: B, workers: Number(workers), mpi });
let comm;
if (mpi) ({ Communicator: comm } = await import('../dist/src/mpi/communicator.js'));
const c = comm?.world();
const before = c ? { wait: c.waitMs, bytes: c.bytesReceived, n: c.exchanges } : undefined;
const t0 = performance.now();
const r = await m.fit(data, { epochs: Number(epochs), batchSize: B, workers: Number(workers), mpi });
const seconds = (performance.now() - t0) / 1000;
const steps = r.history.length * (n / B);
const rank = c?.rank ?? 0;
if (rank === 0) {
  console.log(JSON.stringify({
    cpu: cpus()[0]?.model, cores: availableParallelism(),
    ranks: c?.size ?? 1, workers: Number(workers), steps,
    samplesPerSecond: (steps * B) / seconds,
    ...(c ? { mpiWaitMsPerStep: (c.waitMs - before.wait) / steps, mpiBytesPerStep: (c.bytesReceived - before.bytes) / steps, exchangesPerStep: (c.exchanges - before.n) / steps } : {}),
  }));
}
await m.close();
