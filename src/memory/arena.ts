/**
 * A bump allocator of typed views over one memory, for regions that are few and private
 * (the inference engine's, in a memory of its own or after a session's layout). 64-byte
 * aligned, like the training layout.
 */
import { LAYOUT_BASE } from './layout.js';

/** Plans byte offsets first, then hands out views once the memory exists. */
export class Arena {
  private offset: number;
  private readonly plan: { kind: 'f32' | 'i32'; offset: number; length: number }[] = [];

  /** @param base the first byte the arena may use (a memory of its own: LAYOUT_BASE; after a session's layout: its byteLength). */
  constructor(base = LAYOUT_BASE) {
    this.offset = base;
  }

  /** Reserve `length` floats (or ints); returns the reservation's index. */
  reserve(length: number, kind: 'f32' | 'i32' = 'f32'): number {
    this.offset = Math.ceil(this.offset / 64) * 64;
    this.plan.push({ kind, offset: this.offset, length });
    this.offset += length * 4;
    return this.plan.length - 1;
  }

  /** Bytes the memory must hold. */
  get byteLength(): number {
    return Math.ceil(this.offset / 64) * 64;
  }

  /** The view of reservation `i` on `buffer`. */
  f32(buffer: ArrayBufferLike, i: number): Float32Array {
    const r = this.plan[i]!;
    return new Float32Array(buffer as ArrayBuffer, r.offset, r.length);
  }

  /** The Int32 view of reservation `i` on `buffer`. */
  i32(buffer: ArrayBufferLike, i: number): Int32Array {
    const r = this.plan[i]!;
    return new Int32Array(buffer as ArrayBuffer, r.offset, r.length);
  }
}
