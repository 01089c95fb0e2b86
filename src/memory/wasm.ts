/**
 * The parts of the WebAssembly JS API this library uses. Node provides them everywhere;
 * TypeScript declares them only in its DOM lib, which a Node library must not pull into
 * its consumers' type checks, so they are declared here, narrowly.
 */

/** A WasmMemory (shared, in this library). */
export interface WasmMemory {
  /** The bytes: a SharedArrayBuffer for a shared memory. */
  readonly buffer: ArrayBufferLike;
  /** Grow by `pages` pages of 64 KiB; returns the old size in pages. */
  grow(pages: number): number;
}

/** A compiled WebAssembly.Module (structured-cloneable to worker threads). */
export type WasmModule = object;

/** A WebAssembly.Instance. */
export interface WasmInstance {
  /** The instance's exports by name. */
  readonly exports: Record<string, unknown>;
}

interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
}

/** `globalThis.WebAssembly`, typed by the declarations above. */
export const Wasm: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
