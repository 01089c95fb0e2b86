// Run the scaling benchmark from code: step throughput of one mixture with 1…W worker
// threads, parallel efficiency, and the synchronisation cost per phase against the bare
// signal round trip measured on the same pool. (The CLI's `moe bench scaling` runs the
// same function and writes the report as JSON and markdown.)
//
//   node examples/scaling-benchmark.mjs [--size small] [--workers 1,2] [--time-ms 500]
import { parseArgs } from 'node:util';
import { runScalingBenchmark } from 'local-experts';

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: 'small' }, // small | medium | large
    workers: { type: 'string', default: '1,2' },
    experts: { type: 'string', default: '4' },
    'time-ms': { type: 'string', default: '500' },
  },
});

const report = await runScalingBenchmark({
  sizes: [values.size],
  workers: values.workers.split(',').map(Number),
  experts: Number(values.experts),
  timeMs: Number(values['time-ms']),
  pings: 200,
  onProgress: (line) => console.error(line),
});

console.log(`${report.machine}: ${report.cores} cores, backend ${report.backend}, ${report.experts} experts, Node ${report.node}`);
for (const s of report.sizes) console.log(`${s.size}: ${s.note}, batch ${s.batch}, ${s.flopsPerStep.toExponential(2)} FLOP per step`);
console.log('size    workers  samples/s  speedup  efficiency  sync µs/phase  round trip µs');
for (const r of report.rows) {
  console.log(
    [
      r.size.padEnd(6),
      String(r.workers).padStart(7),
      r.samplesPerSecond.toFixed(0).padStart(9),
      r.speedup.toFixed(2).padStart(7),
      `${(100 * r.efficiency).toFixed(0)}%`.padStart(10),
      r.syncMicros.toFixed(1).padStart(13),
      r.atomicsRoundTripMicros.toFixed(1).padStart(13),
    ].join('  '),
  );
}
const inProcess = report.rows.find((r) => r.inProcessSamplesPerSecond !== undefined)?.inProcessSamplesPerSecond;
if (inProcess !== undefined) console.log(`in-process trainer, same steps: ${inProcess.toFixed(0)} samples/s`);
// At the paper's size a step is a few microseconds of arithmetic, no more than one signal
// round trip between threads, so one thread wins. Threads can pay off only where each
// step's expert compute dwarfs the round trip (--size medium or large) and the cores are
// otherwise idle.
