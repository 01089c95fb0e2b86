/**
 * Kernel memory: one shared WebAssembly.Memory per training session (and a private one
 * per inference engine). A 32-bit wasm memory holds at most 65,536 pages of 64 KiB
 * (4 GiB); a layout beyond the limit is refused with an error that says what to lower.
 */
import { wasmApi, type WasmMemory } from '../kernels/wasm-api.js';
import { MoeError, OptionError } from '../errors.js';

/** Bytes of one wasm page. */
export const PAGE_BYTES = 65536;
/** Pages a 32-bit wasm memory can hold. */
export const MAX_PAGES = 65536;

let limitBytes = MAX_PAGES * PAGE_BYTES;

/** @internal Tests lower the limit to exercise the refusal without allocating 4 GiB. */
export function setMemoryLimitForTests(bytes: number | undefined): void {
  limitBytes = bytes ?? MAX_PAGES * PAGE_BYTES;
}

/** The current limit, in bytes. */
export function memoryLimit(): number {
  return limitBytes;
}

/** What to change, by the option an allocation names (the flag a user types, the library's option). */
const LOWER: Record<string, string> = {
  model: ': the model is too large to run in one memory; train one with fewer experts (--experts) or narrower networks (--expert, --gate)',
  batchSize: ': lower the batch size (--batch-size), or the model\'s size (--experts, --expert, --gate)',
};

/**
 * A shared WebAssembly.Memory of at least `byteLength` bytes (fixed size: it never grows,
 * so views made on it stay valid). `option` names what to lower in the error.
 */
export function allocateMemory(byteLength: number, what: string, option: string): WasmMemory {
  if (byteLength > limitBytes) {
    const gib = (n: number): string => (n / 2 ** 30).toFixed(2);
    throw new OptionError(option, `${what} needs ${gib(byteLength)} GiB of kernel memory; one WebAssembly memory holds at most ${gib(limitBytes)} GiB${LOWER[option] ?? ''}`);
  }
  if (typeof SharedArrayBuffer !== 'function') {
    throw new MoeError('SHARED_MEMORY_UNAVAILABLE', 'SharedArrayBuffer is not available in this runtime');
  }
  const pages = Math.max(1, Math.ceil(byteLength / PAGE_BYTES));
  try {
    return new wasmApi.Memory({ initial: pages, maximum: pages, shared: true });
  } catch (err) {
    throw new MoeError('SHARED_MEMORY_UNAVAILABLE', `could not allocate ${pages} pages of shared WebAssembly memory: ${(err as Error).message}`, { cause: err });
  }
}
