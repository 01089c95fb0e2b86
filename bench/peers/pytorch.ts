/**
 * PyTorch as a peer of the benchmarks: the shipped script `python/torch_peer.py` trains
 * the peers benchmark's mixture (8 experts, linear gate, Gaussian-mixture NLL, Adam, the
 * shapes of `SIZE_SPECS`) and times full training steps; given `init` and `data` it starts
 * from this library's initial parameters and trains on its batches. This module runs it
 * once per thread configuration and denormal mode, each in a process of its own, and
 * classifies the results.
 *
 * Denormal mode: `flushDenormal` sets flush-to-zero and denormals-are-zero before `import
 * torch` (through the C library, so that OpenBLAS's threads inherit it) and then
 * `torch.set_flush_denormal(True)`; without it PyTorch runs as it is (IEEE subnormals).
 *
 * Why one process per configuration, with the thread variables in its environment: Debian's
 * torch does its matrix products in the system OpenBLAS, whose own thread pool
 * `torch.set_num_threads` does not control (with only `set_num_threads(1)` it was measured
 * using 1.7–2 cores here). OpenBLAS reads `OPENBLAS_NUM_THREADS` once, when it is loaded,
 * so the count has to be in the environment before `import torch`. Each row records process
 * CPU time ÷ wall time of its timed window, and a row that used more cores than its
 * configuration allows is reported as invalid and left out of "best".
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { OptionError } from '../../src/index.js';
import { findTorchPython, median, type TorchPython } from '../../src/internal.js';
import { BENCH_SIZES, checkPositiveInt, CPU_PER_WALL_TOLERANCE, withinCores, type BenchSize } from '../harness.js';

export { CPU_PER_WALL_TOLERANCE, withinCores };

/**
 * The thread configurations: torch's own threads (`torch.set_num_threads`, OpenMP) and
 * OpenBLAS's, per process; and data-parallel training in 2 processes (DDP over gloo, one
 * thread each, each its half of every batch).
 */
export const PYTORCH_CONFIGS = [
  { config: 'torch1-blas1', threads: 1, blasThreads: 1, processes: 1 },
  { config: 'torch2-blas1', threads: 2, blasThreads: 1, processes: 1 },
  { config: 'torch1-blas2', threads: 1, blasThreads: 2, processes: 1 },
  { config: 'torch2-blas2', threads: 2, blasThreads: 2, processes: 1 },
  { config: 'ddp2-gloo', threads: 1, blasThreads: 1, processes: 2 },
] as const;

/** Cores a configuration may use: max(threads, blasThreads) per process. */
export function configCores(c: { threads: number; blasThreads: number; processes: number }): number {
  return Math.max(c.threads, c.blasThreads) * c.processes;
}

/** One of {@link PYTORCH_CONFIGS}' names. */
export type PytorchConfigName = (typeof PYTORCH_CONFIGS)[number]['config'];

/** How the script holds the experts: one batched [E, n_in, n_out] tensor per layer (`torch.baddbmm`), or E `nn.Linear` stacks. */
export type PytorchExpertImpl = 'bmm' | 'linear';

/** One configuration's measurement. */
export interface PytorchRow {
  /** Problem size (`SIZE_SPECS`). */
  size: BenchSize;
  system: 'pytorch';
  /** Which thread configuration. */
  config: PytorchConfigName;
  /** torch's threads (`torch.set_num_threads`, and `OMP_NUM_THREADS`). */
  threads: number;
  /** OpenBLAS's threads (`OPENBLAS_NUM_THREADS`, and `MKL_NUM_THREADS`). */
  blasThreads: number;
  /** Processes training data-parallel (DDP over gloo), 1 otherwise. */
  processes: number;
  /** Cores the configuration may use: max(threads, blasThreads) × processes. */
  cores: number;
  /** Training rows per second over the timed steps. */
  samplesPerSecond: number;
  /** Process CPU time (all threads, user + system) ÷ wall time over the timed steps. */
  cpuPerWall: number;
  /** cpuPerWall ≤ cores + {@link CPU_PER_WALL_TOLERANCE}: the run stayed within its cores. */
  valid: boolean;
  /** Timed steps. */
  steps: number;
  /** Wall time of the timed steps, s. */
  wallSeconds: number;
  /** Process CPU time of the timed steps, s. */
  cpuSeconds: number;
  /** Rows per step. */
  batch: number;
  /** How the experts were held. */
  impl: PytorchExpertImpl;
  /** `torch.__version__`. */
  torch: string;
  /** The interpreter that ran it. */
  python: string;
  /** Mean loss of the last timed step (finite, or the run is an error). */
  loss: number;
  /** Run with FTZ/DAZ set before `import torch` and `torch.set_flush_denormal(True)`. */
  flushDenormal: boolean;
  /** Whether float32 arithmetic on torch's thread did flush a subnormal input (checked by the script). */
  flushes: boolean;
  /** The loss of each of the first steps from the start (warm-up included; null where not finite). */
  losses: (number | null)[];
  /** Each timed step's wall time, s, in order. */
  stepSeconds: number[];
}

/** What {@link runPytorchPeer} returns: rows, or why PyTorch was not run (then `rows` is empty). */
export type PytorchPeerResult =
  | {
      /** One row per configuration, in the order run. */
      rows: PytorchRow[];
      /** The interpreter used. */
      python: string;
      /** `torch.__version__`. */
      torch: string;
      skipped?: undefined;
    }
  | {
      rows: [];
      /** Why not: no interpreter here imports torch (what was tried, and each one's last error line). */
      skipped: string;
    };

/** Options of {@link runPytorchPeer}. */
export interface PytorchPeerOptions {
  /** Configurations to run, in this order; default all of {@link PYTORCH_CONFIGS}. */
  configs?: readonly PytorchConfigName[];
  /** Exactly this many timed steps per configuration (instead of `timeSeconds`). */
  steps?: number;
  /** Timed budget per configuration, s (default 3): steps run until it is spent. */
  timeSeconds?: number;
  /** With `timeSeconds`: at least this many timed steps. */
  minSteps?: number;
  /** Untimed steps before timing; default 3. */
  warmupSteps?: number;
  /** Expert form; default the script's, the faster one here: `bmm` for linear experts (small), `linear` for MLP experts (medium, large). */
  impl?: PytorchExpertImpl;
  /** Adam's learning rate; default the script's (0.01). Speed does not depend on it. */
  lr?: number;
  /** Seed of the script's data and initialisation; default 1. */
  seed?: number;
  /** Initial parameters: a safetensors file of this library's (`Mixture.toSafetensors`). */
  init?: string;
  /** The batches: raw float32 rows of D inputs then K targets, in training order. */
  data?: string;
  /** FTZ/DAZ before `import torch`, then `torch.set_flush_denormal(True)` (default false: as is). */
  flushDenormal?: boolean;
  /** The interpreter to use; default {@link findTorchPython}'s answer. */
  python?: TorchPython;
  /** Environment the processes start from (the thread variables are then set on it); default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Limit on each process, ms; default 600000. */
  timeoutMs?: number;
  /** One line per configuration as it finishes. */
  onProgress?: (message: string) => void;
}

let scriptPath: string | undefined;

/**
 * Absolute path of `python/torch_peer.py`: found from this module's own location (src/
 * under vitest, dist/src/ when built or installed), never the current directory.
 */
export function torchPeerScript(): string {
  if (scriptPath !== undefined) return scriptPath;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    const candidate = join(dir, 'python', 'torch_peer.py');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return (scriptPath = candidate);
    if (dirname(dir) === dir) break;
  }
  throw new Error(`python/torch_peer.py not found in any directory above ${start}`);
}

/**
 * The environment of one configuration's process: `OPENBLAS_NUM_THREADS` and
 * `MKL_NUM_THREADS` = blasThreads, `OMP_NUM_THREADS` = threads (torch's OpenMP pool, which
 * `torch.set_num_threads` sets too), on top of `base`.
 */
export function pytorchEnv(config: { threads: number; blasThreads: number }, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    OPENBLAS_NUM_THREADS: String(config.blasThreads),
    MKL_NUM_THREADS: String(config.blasThreads),
    OMP_NUM_THREADS: String(config.threads),
  };
}

/** The script's JSON line. */
interface ScriptResult {
  torch: string;
  threads: number;
  impl: PytorchExpertImpl;
  samplesPerSecond: number;
  steps: number;
  wallSeconds: number;
  cpuSeconds: number;
  cpuPerWall: number;
  batch: number;
  loss: number | null;
  /** The thread variables as the script saw them. */
  env: Record<string, string | null>;
  losses: (number | null)[];
  stepSeconds: number[];
  flushDenormal: boolean;
  flushes: boolean;
  /** With flushDenormal: `set`, or why the MXCSR could not be set. */
  mxcsr: string | null;
}

/** Parse and check the script's last stdout line. */
export function parseTorchPeerOutput(stdout: string): ScriptResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`torch_peer.py printed no JSON line (last line: ${JSON.stringify(line.slice(0, 200))})`);
  }
  const o = v as Record<string, unknown>;
  const num = (k: string): number => {
    const x = o[k];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`torch_peer.py output: ${k} is not a finite number (${JSON.stringify(x)})`);
    return x;
  };
  if (typeof o.torch !== 'string') throw new Error('torch_peer.py output: no torch version');
  if (o.impl !== 'bmm' && o.impl !== 'linear') throw new Error(`torch_peer.py output: impl ${JSON.stringify(o.impl)}`);
  return {
    torch: o.torch,
    threads: num('threads'),
    impl: o.impl,
    samplesPerSecond: num('samplesPerSecond'),
    steps: num('steps'),
    wallSeconds: num('wallSeconds'),
    cpuSeconds: num('cpuSeconds'),
    cpuPerWall: num('cpuPerWall'),
    batch: num('batch'),
    loss: typeof o.loss === 'number' ? o.loss : null,
    env: typeof o.env === 'object' && o.env !== null ? (o.env as Record<string, string | null>) : {},
    losses: Array.isArray(o.losses) ? o.losses.map((v) => (typeof v === 'number' && Number.isFinite(v) ? v : null)) : [],
    stepSeconds: Array.isArray(o.stepSeconds) ? o.stepSeconds.filter((v): v is number => typeof v === 'number') : [],
    flushDenormal: o.flushDenormal === true,
    flushes: o.flushes === true,
    mxcsr: typeof o.mxcsr === 'string' ? o.mxcsr : null,
  };
}

function runScript(python: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python, args, { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 1 << 20, windowsHide: true }, (err, stdout, stderr) => {
      if (!err) {
        resolve(stdout);
        return;
      }
      const last = stderr.trim().split('\n').pop()?.trim();
      reject(new Error(`${python} ${args.join(' ')} failed: ${last || err.message}`, { cause: err }));
    });
  });
}

/**
 * Train the mixture of one size in PyTorch once per thread configuration, each in its own
 * process with the thread variables set before `import torch`, one after another (never
 * two at once). Where no interpreter imports torch it resolves to `{ rows: [], skipped }`
 * instead of rejecting; a script that fails on an interpreter that does import torch
 * rejects with its last error line.
 *
 * One call is one round of every configuration: to compare with other systems, call it
 * once per round between theirs and take medians ({@link medianPytorchRows}).
 */
export async function runPytorchPeer(size: BenchSize, opts: PytorchPeerOptions = {}): Promise<PytorchPeerResult> {
  if (!(BENCH_SIZES as readonly string[]).includes(size)) throw new OptionError('size', `must be one of ${BENCH_SIZES.join(', ')}, got ${String(size)}`);
  if (opts.steps !== undefined) checkPositiveInt(opts.steps, 'steps');
  if (opts.warmupSteps !== undefined && !(Number.isInteger(opts.warmupSteps) && opts.warmupSteps >= 0)) {
    throw new OptionError('warmupSteps', `must be an integer ≥ 0, got ${String(opts.warmupSteps)}`);
  }
  if (opts.timeSeconds !== undefined && !(opts.timeSeconds > 0 && Number.isFinite(opts.timeSeconds))) {
    throw new OptionError('timeSeconds', `must be a positive number of seconds, got ${String(opts.timeSeconds)}`);
  }
  if (opts.lr !== undefined && !(opts.lr > 0 && Number.isFinite(opts.lr))) throw new OptionError('lr', `must be a positive number, got ${String(opts.lr)}`);
  if (opts.impl !== undefined && opts.impl !== 'bmm' && opts.impl !== 'linear') throw new OptionError('impl', `must be bmm or linear, got ${String(opts.impl)}`);
  const names = opts.configs ?? PYTORCH_CONFIGS.map((c) => c.config);
  const configs = names.map((name) => {
    const c = PYTORCH_CONFIGS.find((x) => x.config === name);
    if (!c) throw new OptionError('configs', `unknown configuration ${String(name)}; one of ${PYTORCH_CONFIGS.map((x) => x.config).join(', ')}`);
    return c;
  });
  const timeoutMs = opts.timeoutMs ?? 600_000;
  checkPositiveInt(timeoutMs, 'timeoutMs');

  let found: TorchPython;
  if (opts.python) found = opts.python;
  else {
    const f = await findTorchPython(opts.env ? { env: opts.env } : {});
    if (f.python === undefined) return { rows: [], skipped: f.reason };
    found = f;
  }
  const script = torchPeerScript();
  const rows: PytorchRow[] = [];
  for (const c of configs) {
    const args = [script, '--size', size, '--warmup', String(opts.warmupSteps ?? 3), '--torch-threads', String(c.threads), '--seed', String(opts.seed ?? 1)];
    if (opts.steps !== undefined) args.push('--steps', String(opts.steps));
    else args.push('--time', String(opts.timeSeconds ?? 3));
    if (opts.steps === undefined && opts.minSteps !== undefined) args.push('--min-steps', String(checkPositiveInt(opts.minSteps, 'minSteps')));
    if (opts.impl) args.push('--impl', opts.impl);
    if (opts.lr !== undefined) args.push('--lr', String(opts.lr));
    if (opts.init !== undefined) args.push('--init', opts.init);
    if (opts.data !== undefined) args.push('--data', opts.data);
    if (opts.flushDenormal) args.push('--flush-denormal');
    if (c.processes > 1) args.push('--processes', String(c.processes));
    const out = parseTorchPeerOutput(await runScript(found.python, args, pytorchEnv(c, opts.env ?? process.env), timeoutMs));
    if (out.threads !== c.threads) throw new Error(`torch_peer.py ran with ${out.threads} torch threads, asked for ${c.threads}`);
    const env = pytorchEnv(c, {});
    for (const k of ['OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'] as const) {
      if (out.env[k] !== env[k]) throw new Error(`torch_peer.py saw ${k}=${String(out.env[k])}, the runner set ${String(env[k])}`);
    }
    if (out.loss === null) throw new Error(`torch_peer.py ${size} ${c.config}: the loss is not finite`);
    if (out.flushDenormal !== (opts.flushDenormal ?? false)) throw new Error(`torch_peer.py ran with flushDenormal ${String(out.flushDenormal)}, asked for ${String(opts.flushDenormal ?? false)}`);
    if (out.flushDenormal && out.mxcsr !== 'set') opts.onProgress?.(`pytorch ${c.config}: FTZ/DAZ not set before import torch (${String(out.mxcsr)}); torch.set_flush_denormal only`);
    const cores = configCores(c);
    const row: PytorchRow = {
      size,
      system: 'pytorch',
      config: c.config,
      threads: c.threads,
      blasThreads: c.blasThreads,
      processes: c.processes,
      cores,
      samplesPerSecond: out.samplesPerSecond,
      cpuPerWall: out.cpuPerWall,
      valid: withinCores(out.cpuPerWall, cores),
      steps: out.steps,
      wallSeconds: out.wallSeconds,
      cpuSeconds: out.cpuSeconds,
      batch: out.batch,
      impl: out.impl,
      torch: out.torch,
      python: found.python,
      loss: out.loss,
      flushDenormal: out.flushDenormal,
      flushes: out.flushes,
      losses: out.losses,
      stepSeconds: out.stepSeconds,
    };
    rows.push(row);
    opts.onProgress?.(
      `${size} pytorch ${c.config}${row.flushDenormal ? ' flush' : ''}: ${Math.round(row.samplesPerSecond).toLocaleString('en-US')} samples/s over ${row.steps} steps, ${row.cpuPerWall.toFixed(2)} cores busy${row.valid ? '' : ` (invalid: more than ${cores} core${cores > 1 ? 's' : ''})`}`,
    );
  }
  return { rows, python: found.python, torch: rows[0]?.torch ?? found.torch };
}

/**
 * PyTorch's best valid row on one core, and on at most two (the one-core rows included),
 * by samples/s, of rows of ONE size, either denormal mode; undefined where no valid row of
 * that core count exists. Invalid rows never count.
 */
export function bestPytorchRows(rows: readonly PytorchRow[]): { oneCore: PytorchRow | undefined; twoCore: PytorchRow | undefined } {
  const sizes = new Set(rows.map((r) => r.size));
  if (sizes.size > 1) throw new OptionError('rows', `rows of one size expected, got ${[...sizes].join(', ')}`);
  const best = (cores: number): PytorchRow | undefined =>
    rows.filter((r) => r.valid && r.cores <= cores).reduce<PytorchRow | undefined>((b, r) => (b === undefined || r.samplesPerSecond > b.samplesPerSecond ? r : b), undefined);
  return { oneCore: best(1), twoCore: best(2) };
}

/**
 * One row per (size, configuration, denormal mode) from several rounds: the median samples/s and
 * cpuPerWall of that configuration's valid rounds (all its rounds where none is valid,
 * then marked invalid), steps and seconds summed over those rounds, `rounds` and
 * `invalidRounds` counted. Feed the result to
 * {@link bestPytorchRows}.
 */
export function medianPytorchRows(rows: readonly PytorchRow[]): (PytorchRow & { rounds: number; invalidRounds: number })[] {
  const groups = new Map<string, PytorchRow[]>();
  for (const r of rows) {
    const k = `${r.size}\u0000${r.config}\u0000${r.flushDenormal}`;
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const out: (PytorchRow & { rounds: number; invalidRounds: number })[] = [];
  for (const g of groups.values()) {
    const valid = g.filter((r) => r.valid);
    const use = valid.length ? valid : g;
    const first = use[0]!;
    out.push({
      ...first,
      samplesPerSecond: median(use.map((r) => r.samplesPerSecond)),
      cpuPerWall: median(use.map((r) => r.cpuPerWall)),
      steps: use.reduce((s, r) => s + r.steps, 0),
      wallSeconds: use.reduce((s, r) => s + r.wallSeconds, 0),
      cpuSeconds: use.reduce((s, r) => s + r.cpuSeconds, 0),
      loss: use[use.length - 1]!.loss,
      valid: valid.length > 0,
      rounds: g.length,
      invalidRounds: g.length - valid.length,
    });
  }
  return out;
}
