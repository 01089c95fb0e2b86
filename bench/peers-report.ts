/**
 * The peer benchmark's report as markdown (for people and bench/results) and JSON (for
 * tools). Formatting only: the numbers come from {@link runPeerBenchmark}.
 */
import type { StepBreakdown } from './breakdown.js';
import { formatJson, headerLines, markdownTable, num, ratio } from './harness.js';
import type { PeerReport, PeerRow } from './peers.js';
import { BENCH_LR } from './problem.js';

/** The report as JSON (one line, or indented with `pretty`); non-finite numbers become null. */
export function formatPeersJson(report: PeerReport, pretty = false): string {
  return formatJson(report, pretty);
}

function rowCells(r: PeerRow): string[] {
  const spread = r.roundSamplesPerSecond.length > 1 ? `${num(Math.min(...r.roundSamplesPerSecond))}–${num(Math.max(...r.roundSamplesPerSecond))}` : '–';
  return [
    r.label,
    r.config ?? '',
    String(r.threads),
    String(r.blasThreads),
    num(r.samplesPerSecond),
    spread,
    num(r.stepMicros),
    `${r.cpuPerWall.toFixed(2)}${r.valid ? '' : ' ✗'}`,
    ratio(r.vsPytorchOneCore),
    ratio(r.vsPytorchBestTwoCore),
  ];
}

/** One breakdown row: µs per step and the share of the step. */
function breakdownCells(b: StepBreakdown): string[] {
  const part = (v: number): string => `${num(v)} (${((v / b.stepMicros) * 100).toFixed(0)}%)`;
  return [
    b.system === 'in-process' ? 'in-process' : `${b.workers} workers${b.apportioned ? ' *' : ''}`,
    num(b.stepMicros),
    part(b.gemmMicros),
    part(b.elementwiseMicros),
    part(b.optimiserMicros),
    part(b.gateMicros),
    part(b.syncMicros),
    part(b.otherMicros),
    `${num(b.sumMicros)} (${b.error >= 0 ? '+' : ''}${(b.error * 100).toFixed(1)}%)`,
  ];
}

/** The report as markdown: per size the systems side by side, the ratios, gemmShare and where the time goes. */
export function formatPeersMarkdown(r: PeerReport): string {
  const lines: string[] = [];
  lines.push(`# Peers: the same mixture on identical shapes, one run`, '');
  lines.push(
    ...headerLines(r, [
      `- This library's compute: ${r.backend} (${r.backendDetail}), ${r.blasThreads} BLAS thread per compute thread`,
      `- PyTorch: ${r.pytorch.available ? r.pytorch.detail : `not available (${r.pytorch.detail})`}`,
      `- Measurement: ${r.rounds} interleaved round${r.rounds === 1 ? '' : 's'} (every system once per round, the order reversed every other round); ${r.steps !== undefined ? `${r.steps} timed steps` : `${num(r.timeMs)} ms`} per measurement; the median round is reported`,
    ]),
  );
  lines.push('');
  lines.push(
    `Every system trains the same mixture on the same shapes: ${r.experts} experts, a linear gate, the Gaussian-mixture NLL, Adam, random regression data (lr ${BENCH_LR}).`,
    '',
  );
  for (const s of r.sizes) {
    lines.push(`## ${s.size}: ${s.note}${s.expert === 'linear' ? '' : ` (${s.activation})`}, ${s.experts} experts, batch ${s.batch}`, '');
    lines.push(`${s.expertParams.toLocaleString('en-US')} parameters per expert, ${s.gateParams.toLocaleString('en-US')} in the gate, about ${num(s.flopsPerStep / 1e6)} MFLOP of expert compute per step.`, '');
    const rows = r.rows.filter((x) => x.size === s.size);
    lines.push(
      ...markdownTable(
        ['system', 'config', 'threads', 'BLAS threads', 'samples/s (median)', 'rounds min–max', 'µs/step', 'CPU ÷ wall', '× PyTorch 1 core', '× PyTorch best 2 cores'],
        rows.map(rowCells),
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    lines.push('');
    if (s.pytorchBestTwoCore) lines.push(`PyTorch's best two-core configuration: ${s.pytorchBestTwoCore.config}, ${num(s.pytorchBestTwoCore.samplesPerSecond)} samples/s.`, '');
    for (const x of r.skipped.filter((k) => k.size === s.size)) lines.push(`Not run: ${x.system}${x.config ? ` ${x.config}` : ''}: ${x.reason}.`);
    if (r.skipped.some((k) => k.size === s.size)) lines.push('');
    if (s.gemmReplay) {
      const g = s.gemmReplay;
      lines.push(
        `gemmShare ${s.gemmShare!.toFixed(2)}: one in-process step's ${g.calls} sgemm calls (${num(g.flopsPerStep / 1e6)} MFLOP), replayed alone on the same buffers and thread, take ${num(g.replayMicros)} µs (median of ${g.reps}) of the step's ${num(g.stepMicros)} µs: ${g.gflops.toFixed(1)} GFLOP/s.`,
        '',
      );
    }
    if (s.breakdown.length) {
      lines.push('Where one step goes, µs per step (share of the step):', '');
      lines.push(...markdownTable(['trainer', 'step', 'gemm', 'element-wise', 'optimiser', 'gate (main thread)', 'sync', 'other', 'sum (vs step)'], s.breakdown.map(breakdownCells)));
      lines.push('');
      const k = s.breakdown.find((b) => b.kernelMicros)?.kernelMicros;
      if (k) {
        const top = Object.entries(k).slice(0, 6);
        lines.push(`The in-process experts' kernels, µs per step: ${top.map(([name, v]) => `${name} ${num(v)}`).join(', ')}.`, '');
      }
    }
  }
  const allSkipped = r.skipped.filter((k) => k.size === 'all');
  for (const x of allSkipped) lines.push(`Not run anywhere: ${x.system}: ${x.reason}.`);
  if (allSkipped.length) lines.push('');
  lines.push('## Definitions', '');
  lines.push(
    '- samples/s: training rows per second of full steps (forward, loss read back, backward, optimiser), the median over the rounds that stayed within their cores.',
    '- CPU ÷ wall: process CPU time (every thread) ÷ wall time over the timed steps, the median round; ✗ marks a system whose every round used more than its cores + 0.2 (invalid: not used for ratios or "best").',
    '- × PyTorch 1 core: ÷ PyTorch with one torch thread and one OpenBLAS thread; × PyTorch best 2 cores: ÷ the fastest valid PyTorch configuration allowed two cores (torch 2 / BLAS 1, torch 1 / BLAS 2, both 2).',
    '- gemmShare: the in-process step\'s own sgemm calls (shapes and buffers recorded from one step, gate included) replayed alone right after, warm (the median replay), ÷ the in-process step time measured in the same session with the timers off (the median step); GFLOP/s = 2·M·N·K summed ÷ replay time.',
    '- Where one step goes: timing wrappers around sgemm, every element-wise kernel and the pool\'s phases, on steps of their own (the timers add a little to each step; the parts are checked against that step). gemm, element-wise and optimiser (sgd, momentum, adam kernels) are the experts\'; gate is the main thread\'s own work on the critical path (batch gather, gate forward and backward, routing, loss, the gate\'s Adam); sync (workers) is each phase\'s wall time minus the longer of the slowest shard\'s compute and the main thread\'s overlapping work; other is the experts\' time outside any sgemm or kernel call.',
    '- \\* the workers\' experts run in shard threads whose calls the main thread cannot time: each phase\'s slowest-shard compute (the shards\' busy counters) is split into gemm, element-wise, optimiser and other in the in-process proportions of the same phase.',
    '',
  );
  lines.push('## How the peers are built', '');
  lines.push(
    `- local-experts: \`MixtureStep\` with the in-process expert pool (one thread), and with ${r.workers} shard workers on SharedArrayBuffer; each step reads its loss back. OpenBLAS with one thread per compute thread.`,
    '- PyTorch: python/torch_peer.py, the same mixture (its faster expert form here, in the compute column: linear experts as one batched product through torch.baddbmm, MLP experts as E nn.Linear stacks; log_softmax gate, logsumexp NLL, torch.optim.Adam), its own initial parameters and random batches of the same shapes; one process per configuration and round, with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS set before `import torch` and torch.set_num_threads; its loss read back with .item() every step.',
    '',
  );
  return lines.join('\n');
}
