/**
 * Test-local stand-in for src/python/find-torch.ts (written by another helper; same
 * contract): the first of `MOE_PYTHON`, `python3`, `/usr/bin/python3` that can
 * `import torch`, or why none can. Replace the import with the library's once merged.
 */
import { execFile } from 'node:child_process';

/** An interpreter that imports torch, or none and why (one clause per interpreter tried). */
export type TorchLookup = { python: string; torch: string } | { python: undefined; reason: string };

function probe(python: string): Promise<{ ok: true; torch: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    execFile(python, ['-c', 'import torch; print(torch.__version__)'], { timeout: 60_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const version = stdout.trim().split('\n').pop()?.trim() ?? '';
      if (!err && version !== '') resolve({ ok: true, torch: version });
      else if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') resolve({ ok: false, error: 'not found' });
      else resolve({ ok: false, error: stderr.trim().split('\n').pop() || String(err?.message ?? 'printed no version').split('\n')[0]! });
    });
  });
}

/** The first interpreter of MOE_PYTHON, python3, /usr/bin/python3 that imports torch. */
export async function findTorchPython(): Promise<TorchLookup> {
  const env = process.env.MOE_PYTHON;
  const candidates = [...(env ? [env] : []), 'python3', '/usr/bin/python3'];
  const reasons: string[] = [];
  for (const python of candidates) {
    const r = await probe(python);
    if (r.ok) return { python, torch: r.torch };
    reasons.push(`${python === env ? `MOE_PYTHON=${python}` : python}: ${r.error}`);
  }
  return { python: undefined, reason: reasons.join('; ') };
}
