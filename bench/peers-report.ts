/**
 * The peer benchmark's report as markdown (for people and bench/results) and JSON (for
 * tools). Formatting only: the numbers come from {@link runPeerBenchmark}.
 */
import type { StepBreakdown } from './breakdown.js';
import { formatJson, headerLines, markdownTable, num, ratio } from './harness.js';
import { LOSS_CHECK_TOLERANCE, type PeerReport, type PeerRow } from './peers.js';
import { BENCH_LR } from './problem.js';

/** The report as JSON (one line, or indented with `pretty`); non-finite numbers become null. */
export function formatPeersJson(report: PeerReport, pretty = false): string {
  return formatJson(report, pretty);
}

/** A ratio beside its ceiling: `1.20× (≤ 1.52×)`. */
function withCeiling(v: number | undefined, ceiling: number | undefined): string {
  return ceiling === undefined ? ratio(v) : `${ratio(v)} (≤ ${ratio(ceiling)})`;
}

function rowCells(r: PeerRow): string[] {
  const spread = r.roundSamplesPerSecond.length > 1 ? `${num(Math.min(...r.roundSamplesPerSecond))}–${num(Math.max(...r.roundSamplesPerSecond))}` : '–';
  return [
    `${r.label}${r.busy ? ' (busy)' : ''}`,
    r.config ?? '',
    r.system === 'pytorch' ? (r.flushDenormal ? 'flush' : 'ieee') : '',
    String(r.threads),
    String(r.blasThreads),
    num(r.samplesPerSecond),
    spread,
    num(r.stepMicros),
    `${r.cpuPerWall.toFixed(2)}${r.valid ? '' : ' ✗'}`,
    r.slowdown === null ? '–' : r.slowdown.toFixed(2),
    withCeiling(r.vsPytorchOneCore, r.vsPytorchOneCoreCeiling),
    withCeiling(r.vsPytorchBestTwoCore, r.vsPytorchBestTwoCoreCeiling),
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
      `- Data: ${r.data === 'hard' ? 'hard (independent random targets, which no mixture can learn)' : 'learnable (each target a noisy copy of one input)'}; this library's subnormals: ${r.denormals === 'flush' ? 'flushed to zero' : 'IEEE'}`,
      `- Measurement: ${r.rounds} interleaved round${r.rounds === 1 ? '' : 's'} (every system once per round, the order reversed every other round); ${r.steps !== undefined ? `${r.steps} timed steps` : `${num(r.timeMs)} ms`} per measurement; the median round is reported`,
    ]),
  );
  lines.push('');
  lines.push(
    `Every system trains the same mixture on the same shapes: ${r.experts} experts, a linear gate, the Gaussian-mixture NLL, Adam, random regression data (lr ${BENCH_LR}), all from the same initial parameters on the same batches.`,
    '',
  );
  for (const s of r.sizes) {
    lines.push(`## ${s.size}: ${s.note}${s.expert === 'linear' ? '' : ` (${s.activation})`}, ${s.experts} experts, batch ${s.batch}`, '');
    lines.push(`${s.expertParams.toLocaleString('en-US')} parameters per expert, ${s.gateParams.toLocaleString('en-US')} in the gate, about ${num(s.flopsPerStep / 1e6)} MFLOP of expert compute per step.`, '');
    const rows = r.rows.filter((x) => x.size === s.size);
    lines.push(
      ...markdownTable(
        ['system', 'config', 'subnormals', 'threads', 'BLAS threads', 'samples/s (median)', 'rounds min–max', 'µs/step', 'CPU ÷ wall', 'slowdown', '× PyTorch best 1 core (ceiling)', '× PyTorch best ≤ 2 cores (ceiling)'],
        rows.map(rowCells),
        ['l', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    lines.push('');
    const best = (b: NonNullable<typeof s.pytorchBestOneCore>): string => `${b.config} ${b.flushDenormal ? 'flushed' : 'as is'}, ${num(b.samplesPerSecond)} samples/s`;
    if (s.pytorchBestOneCore) lines.push(`PyTorch's best on one core: ${best(s.pytorchBestOneCore)}; on at most two cores: ${s.pytorchBestTwoCore ? best(s.pytorchBestTwoCore) : '–'}.`, '');
    if (s.lossCheck) {
      const l = s.lossCheck;
      lines.push(
        `Same start: the first ${l.steps} losses ${l.agree ? 'agree' : 'DO NOT agree'} (largest relative difference ${l.maxRelativeDifference.toExponential(1)} over every PyTorch run, tolerance ${LOSS_CHECK_TOLERANCE}): this library ${l.library.map((v) => v.toFixed(5)).join(', ')}; PyTorch ${l.pytorch.map((v) => (v === null ? '–' : v.toFixed(5))).join(', ')}.`,
        '',
      );
    }
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
    '- × PyTorch best 1 core: ÷ the faster valid PyTorch row with one torch thread and one OpenBLAS thread (as is, or flushed); × PyTorch best ≤ 2 cores: ÷ the fastest valid PyTorch row allowed at most two cores (every configuration, both modes, the one-core rows and DDP over gloo in 2 processes included). In parentheses the ceiling: that PyTorch step ÷ this library\'s sgemm-only time (the gemm replay below, ÷ the row\'s compute threads): the ratio a step made of nothing but its matrix products would reach.',
    '- subnormals (PyTorch): ieee = as is; flush = flush-to-zero and denormals-are-zero set in MXCSR through the C library before `import torch` (so OpenBLAS\'s threads inherit it), then torch.set_flush_denormal(True).',
    "- (busy): other processes' load (the 1-minute load average less the measurement's own busy threads, its CPU ÷ wall) was high (above 0.25 per core) when one of the row's rounds ended.",
    '- slowdown: the slowest 10-step window\'s mean step time ÷ the fastest\'s within a measurement (median over rounds); 1 is steady. With data hard every measurement runs at least 50 steps.',
    '- gemmShare: the in-process step\'s own sgemm calls (shapes and buffers recorded from one step, gate included) replayed alone right after, warm (the median replay), ÷ the in-process step time measured in the same session with the timers off (the median step); GFLOP/s = 2·M·N·K summed ÷ replay time.',
    '- Where one step goes: timing wrappers around sgemm, every element-wise kernel and the runner\'s phases, on steps of their own (the timers add a little to each step; the parts are checked against that step). gemm, element-wise and optimiser (sgd, momentum, adam kernels) are the experts\'; gate is the main thread\'s own work on the critical path (batch gather, gate forward and backward, routing, loss, the gate\'s Adam); sync (workers) is each phase\'s wall time minus the longer of the slowest shard\'s compute and the main thread\'s overlapping work; other is the experts\' time outside any sgemm or kernel call.',
    '- \\* the workers\' experts run in shard threads whose calls the main thread cannot time: each phase\'s slowest-shard compute (the shards\' busy counters) is split into gemm, element-wise, optimiser and other in the in-process proportions of the same phase.',
    '',
  );
  lines.push('## How the peers are built', '');
  lines.push(
    `- local-experts: \`MixtureStep\` with the in-process shard runner (one thread), and with ${r.workers} shard workers on SharedArrayBuffer; each step reads its loss back. OpenBLAS with one thread per compute thread.`,
    '- PyTorch: python/torch_peer.py, the same mixture (its faster expert form here, in the compute column: linear experts as one batched product through torch.baddbmm, MLP experts as E nn.Linear stacks; log_softmax gate, logsumexp NLL, torch.optim.Adam) from this library\'s initial parameters (Mixture.toSafetensors) on this library\'s standardised batches in the same order; one process per configuration, denormal mode and round, with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS set before `import torch` and torch.set_num_threads; its loss read back with .item() every step. The first steps\' losses are checked against this library\'s.',
    '',
  );
  return lines.join('\n');
}
