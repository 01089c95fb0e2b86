/**
 * Every region of a mixture's memory, and every slot of the control block, named in one
 * place. The in-process trainer lays the same regions out in an ArrayBuffer, the parallel
 * trainer in one SharedArrayBuffer that the main thread and every shard map identically.
 */

/** Control block slots (Int32Array indices). */
export const CTRL = {
  /** Command sequence number; the main thread bumps it to start a phase. Shards wait on it. */
  SEQ: 0,
  /** The command for this sequence number (see CMD). */
  CMD: 1,
  /** Rows in the current batch. */
  ROWS: 2,
  /** 1-based optimisation step for UPDATE (Adam's bias correction). */
  STEP: 3,
  /** Shards that finished the current command; the main thread waits on it. */
  DONE: 4,
  /** Set by the main thread when it gives up on the shards (a shard died): stop looping. */
  ABORT: 5,
  /** Slots 8.. : per-shard sequence number of its last finished command (diagnostics). */
  SHARD_DONE_BASE: 8,
} as const;

/** Commands carried in CTRL.CMD. */
/** PING does no work: it measures the bare round trip with the trainer's own wait primitives. */
export const CMD = { FORWARD: 1, BACKWARD: 2, UPDATE: 3, STOP: 4, PING: 5 } as const;
export type Command = (typeof CMD)[keyof typeof CMD];
/** Names of the commands (0: before the first), as errors and fault injection spell them. */
export const PHASE_NAMES: Record<number, string> = {
  0: 'start-up',
  [CMD.FORWARD]: 'forward',
  [CMD.BACKWARD]: 'backward',
  [CMD.UPDATE]: 'update',
  [CMD.STOP]: 'stop',
  [CMD.PING]: 'ping',
};
/** Slots per shard in the `busy` region: accumulated compute milliseconds, indexed by command. */
export const BUSY_SLOTS = 8;

/** Float64 hyper-parameter slots. */
export const HYPER = {
  /** This step's learning rate (after the schedule). */
  LR: 0,
} as const;

/** The sizes a mixture's memory is planned from. */
export interface MixtureSizes {
  /** Rows of the training set held in memory. */
  rows: number;
  /** Input width D. */
  inputs: number;
  /** Output width K. */
  outputs: number;
  /** Number of experts E. */
  experts: number;
  /** Largest batch, in rows. */
  maxBatch: number;
  /** Parameters of one expert. */
  expertParams: number;
  /** Parameters of the gate. */
  gateParams: number;
  /** Optimiser floats per parameter. */
  optState: number;
  /** Shards (workers); 1 in-process. */
  shards: number;
}

/** Element type of a region: Float32Array, Int32Array or Float64Array. */
export type Kind = 'f32' | 'i32' | 'f64';
const BYTES: Record<Kind, number> = { f32: 4, i32: 4, f64: 8 };

/** Region names, their element type and length. */
function regionSpecs(s: MixtureSizes): [name: keyof MixtureViews, kind: Kind, length: number][] {
  return [
    ['control', 'i32', CTRL.SHARD_DONE_BASE + s.shards],
    ['hyper', 'f64', 8],
    // Per shard × command: milliseconds spent computing (not waiting), for the benchmarks.
    ['busy', 'f64', s.shards * BUSY_SLOTS],
    // The dataset, standardised, copied in once; a batch is a list of row indices.
    ['x', 'f32', s.rows * s.inputs],
    ['t', 'f32', s.rows * s.outputs],
    ['labels', 'i32', s.rows],
    // Per step.
    ['batchRows', 'i32', s.maxBatch],
    ['outs', 'f32', s.experts * s.maxBatch * s.outputs],
    ['scores', 'f32', s.maxBatch * s.experts],
    ['weights', 'f32', s.maxBatch * s.experts],
    ['ybar', 'f32', s.maxBatch * s.outputs],
    // Parameters, gradients and optimiser state: expert i at i·expertParams.
    ['expertParams', 'f32', s.experts * s.expertParams],
    ['expertGrads', 'f32', s.experts * s.expertParams],
    ['expertOpt', 'f32', s.experts * s.expertParams * s.optState],
    ['gateParams', 'f32', s.gateParams],
    ['gateGrads', 'f32', s.gateParams],
    ['gateOpt', 'f32', s.gateParams * s.optState],
  ];
}

/** Typed views of every region. */
export interface MixtureViews {
  /** Control block, indexed by the `CTRL` slots, then one slot per shard from 8. */
  control: Int32Array;
  /** Float64 hyper-parameters of the step (learning rate), 8 slots. */
  hyper: Float64Array;
  /** Per shard × command: accumulated compute milliseconds, shards×8. */
  busy: Float64Array;
  /** Standardised inputs of the whole training set, rows×D row-major. */
  x: Float32Array;
  /** Model-space targets of the training set, rows×K row-major. */
  t: Float32Array;
  /** Class labels of the training set (classification), one per row. */
  labels: Int32Array;
  /** Row indices (into `x`/`t`/`labels`) of the current batch, up to maxBatch. */
  batchRows: Int32Array;
  /** Expert outputs, E blocks of maxBatch×K (expert i at i·maxBatch·K). */
  outs: Float32Array;
  /** Per-row expert scores, maxBatch×E. */
  scores: Float32Array;
  /** Per-row weights of each expert's output gradient, maxBatch×E (main thread writes). */
  weights: Float32Array;
  /** Mixture output ȳ per row, maxBatch×K (cooperative loss). */
  ybar: Float32Array;
  /** All experts' parameters, expert i at i·expertParams. */
  expertParams: Float32Array;
  /** All experts' gradients, same layout as `expertParams`. */
  expertGrads: Float32Array;
  /** All experts' optimiser state, optState floats per expert parameter. */
  expertOpt: Float32Array;
  /** Gate parameters. */
  gateParams: Float32Array;
  /** Gate gradients, same layout as `gateParams`. */
  gateGrads: Float32Array;
  /** Gate optimiser state, optState floats per gate parameter. */
  gateOpt: Float32Array;
}

/** Byte offsets of each region, 64-byte aligned so no two regions share a cache line. */
export interface MixtureLayout {
  /** The sizes it was planned from. */
  sizes: MixtureSizes;
  /** Bytes the buffer must hold (a multiple of 64). */
  byteLength: number;
  /** Every region in buffer order. */
  regions: {
    /** Region name (the key of its view). */
    name: keyof MixtureViews;
    /** Element type. */
    kind: Kind;
    /** Byte offset in the buffer (64-byte aligned). */
    offset: number;
    /** Length in elements. */
    length: number;
  }[];
}

export function planLayout(sizes: MixtureSizes): MixtureLayout {
  let offset = 0;
  const regions: MixtureLayout['regions'] = [];
  for (const [name, kind, length] of regionSpecs(sizes)) {
    offset = Math.ceil(offset / 64) * 64;
    regions.push({ name, kind, offset, length });
    offset += length * BYTES[kind];
  }
  return { sizes, byteLength: Math.ceil(offset / 64) * 64, regions };
}

/** Map every region of `buffer` (ArrayBuffer or SharedArrayBuffer) by `layout`. */
export function mapViews(buffer: ArrayBufferLike, layout: MixtureLayout): MixtureViews {
  const v: Partial<Record<keyof MixtureViews, Int32Array | Float32Array | Float64Array>> = {};
  for (const r of layout.regions) {
    const Ctor = r.kind === 'f32' ? Float32Array : r.kind === 'i32' ? Int32Array : Float64Array;
    v[r.name] = new Ctor(buffer as ArrayBuffer, r.offset, r.length);
  }
  return v as MixtureViews;
}
