import { BackendError, OptionError } from '../errors.js';
import { loadBlas } from './blas.js';
import { BACKENDS, type BackendName, type BackendRequest, type ComputeProvider, type ProviderOptions } from './provider.js';
import { loadTfjs } from './tfjs.js';

/** Check a user's backend name at the boundary. */
export function parseBackend(value: unknown, option = 'backend'): BackendRequest {
  if (value === undefined || value === 'auto') return 'auto';
  if (typeof value === 'string' && (BACKENDS as readonly string[]).includes(value)) return value as BackendName;
  throw new OptionError(option, `unknown backend ${JSON.stringify(value)} (expected auto, ${BACKENDS.join(', ')})`);
}

/** Load exactly one provider by name; throws BackendError when it cannot load. */
export async function loadExactProvider(name: BackendName, opts: ProviderOptions = {}): Promise<ComputeProvider> {
  try {
    return name === 'blas' ? loadBlas(opts.blasLibrary) : await loadTfjs(name);
  } catch (err) {
    throw new BackendError(`backend ${name} did not load: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}

/**
 * Choose the provider for a run: the requested one, or for `auto` the first of
 * blas → tensorflow → wasm → cpu that loads. A provider that fails falls through to the
 * next with a one-line warning; the caller reports `provider.name` as the one in use.
 * Setting MOE_REQUIRE_BACKEND=<name> turns a fall-back away from that name into an error
 * (CI uses it so that a missing OpenBLAS fails the suite instead of quietly using wasm).
 */
export async function loadProvider(requested: BackendRequest = 'auto', opts: ProviderOptions = {}): Promise<ComputeProvider> {
  const request = parseBackend(requested);
  const warn = opts.onWarning ?? ((m: string) => console.warn(m));
  const start = request === 'auto' ? 0 : BACKENDS.indexOf(request);
  const required = process.env.MOE_REQUIRE_BACKEND;
  for (let i = start; i < BACKENDS.length; i++) {
    const name = BACKENDS[i]!;
    try {
      return await loadExactProvider(name, opts);
    } catch (err) {
      if (required === name) throw err;
      // tfjs-node is an optional peer: its absence under `auto` is expected, not news.
      if (!(request === 'auto' && name === 'tensorflow')) {
        warn(`local-experts: ${(err as Error).message}; trying ${BACKENDS[i + 1] ?? 'nothing'}`);
      }
    }
  }
  throw new BackendError('no compute backend could be loaded');
}
