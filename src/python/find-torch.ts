/**
 * Finding a Python interpreter that can `import torch`, for the PyTorch peer benchmark
 * and anything else that hands work to PyTorch.
 */
import { execFile } from 'node:child_process';

/** The interpreters tried, in order, after `MOE_PYTHON` (when set). */
export const PYTHON_CANDIDATES: readonly string[] = ['python3', '/usr/bin/python3'];

/** Default limit on one `import torch` probe, ms (a cold import of torch takes seconds on a loaded machine). */
export const TORCH_PROBE_TIMEOUT_MS = 60_000;

/** An interpreter that imports torch, and torch's version (`torch.__version__`). */
export interface TorchPython {
  /** The interpreter as it was tried: `MOE_PYTHON`'s value, `python3` (looked up on PATH) or `/usr/bin/python3`. */
  python: string;
  /** `torch.__version__`, e.g. `1.13.0a0`. */
  torch: string;
}

/** No interpreter imports torch: what was tried and why each failed. */
export interface NoTorchPython {
  python: undefined;
  /** One clause per interpreter tried, `<python>: <last error line>`, joined with `; `. */
  reason: string;
}

/** Options of {@link findTorchPython}; tests and callers with their own environment use them. */
export interface FindTorchOptions {
  /** Environment to read `MOE_PYTHON` from and to run the probes in; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Limit on each probe, ms; default {@link TORCH_PROBE_TIMEOUT_MS}. */
  timeoutMs?: number;
}

/** Run `python -c "import torch; print(torch.__version__)"`: the version, or why not (one line). */
export function probeTorch(python: string, options: FindTorchOptions = {}): Promise<{ ok: true; torch: string } | { ok: false; error: string }> {
  const timeoutMs = options.timeoutMs ?? TORCH_PROBE_TIMEOUT_MS;
  return new Promise((resolve) => {
    execFile(
      python,
      ['-c', 'import torch; print(torch.__version__)'],
      { timeout: timeoutMs, env: options.env ?? process.env, encoding: 'utf8', windowsHide: true },
      (err, stdout, stderr) => {
        const version = stdout.trim().split('\n').pop()?.trim() ?? '';
        if (!err && version !== '') {
          resolve({ ok: true, torch: version });
          return;
        }
        if (!err) {
          resolve({ ok: false, error: 'printed no torch version' });
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null };
        if (e.code === 'ENOENT') resolve({ ok: false, error: 'not found' });
        else if (e.code === 'EACCES') resolve({ ok: false, error: 'not executable' });
        else if (e.killed && e.signal) resolve({ ok: false, error: `no answer within ${timeoutMs} ms (killed)` });
        else {
          const last = stderr
            .trim()
            .split('\n')
            .map((l) => l.trim())
            .filter((l) => l !== '')
            .pop();
          resolve({ ok: false, error: last ?? e.message.split('\n')[0]! });
        }
      },
    );
  });
}

/**
 * The first interpreter of `MOE_PYTHON` (when set and not empty), `python3` (on PATH) and
 * `/usr/bin/python3` that can `import torch`, tried in that order, one at a time; one
 * that fails (missing, no torch, too slow) is passed over for the next. Never rejects:
 * where none imports torch, `python` is undefined and `reason` names every interpreter
 * tried with its last error line, e.g.
 * `MOE_PYTHON=/opt/py: not found; python3: ModuleNotFoundError: No module named 'torch'; …`.
 */
export async function findTorchPython(options: FindTorchOptions = {}): Promise<TorchPython | NoTorchPython> {
  const env = options.env ?? process.env;
  const fromEnv = env.MOE_PYTHON?.trim();
  const tried: string[] = [];
  const candidates: { python: string; label: string }[] = [];
  if (fromEnv) candidates.push({ python: fromEnv, label: `MOE_PYTHON=${fromEnv}` });
  for (const python of PYTHON_CANDIDATES) if (python !== fromEnv) candidates.push({ python, label: python });
  for (const { python, label } of candidates) {
    const r = await probeTorch(python, options);
    if (r.ok) return { python, torch: r.torch };
    tried.push(`${label}: ${r.error}`);
  }
  return { python: undefined, reason: `no Python imports torch: ${tried.join('; ')}` };
}
