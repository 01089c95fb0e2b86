/**
 * The few parts of the WebAssembly JavaScript API the kernels use, typed structurally.
 * The project compiles without the DOM library and @types/node declares no `WebAssembly`
 * global, so these types stand in for `WebAssembly.Memory` and `WebAssembly.Module`: a real
 * Memory or Module satisfies them under any lib setting, and no global is declared (a global
 * declaration would clash with the DOM library's in a user's program).
 */

/** A WebAssembly.Memory, as the kernels see it: its buffer (a SharedArrayBuffer when shared). */
export interface WasmMemory {
  /** The memory's bytes; views passed to the kernels must be views of it. */
  readonly buffer: ArrayBufferLike;
  /** Grows by `deltaPages` pages of 64 KiB; returns the old size in pages. */
  grow(deltaPages: number): number;
}

/** A compiled WebAssembly.Module (opaque; it can be posted to a worker). */
export type WasmModule = object;

/** An instantiated module's exports. */
export interface WasmInstance {
  /** Exported functions by name. */
  readonly exports: Record<string, unknown>;
}

/** The `WebAssembly` namespace, reduced to what the kernels need. */
export interface WasmApi {
  /** `new WebAssembly.Memory({ initial, maximum, shared })`, sizes in 64 KiB pages. */
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  /** Synchronous compilation. */
  Module: new (bytes: Uint8Array) => WasmModule;
  /** Synchronous instantiation. */
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  /** Whether the bytes are a valid module for this engine. */
  validate(bytes: Uint8Array): boolean;
}

/** The global `WebAssembly` namespace (Node ≥ 20 always has it). */
export const wasmApi: WasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
