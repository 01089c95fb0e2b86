/**
 * Every region of a training session's memory, and every slot of its control block, named
 * in one place. The memory is one shared WebAssembly.Memory: its `.buffer` is a
 * SharedArrayBuffer that the main thread and every shard map identically, that OpenBLAS
 * reads and writes through koffi, and that the kernel module runs on. Nothing a step
 * touches lives anywhere else.
 *
 * The unit of expert work is a BLOCK: a run of one expert's entries (batch rows routed to
 * it). Under dense routing expert i has one block of all B rows at entry i·maxBatch; under
 * sparse routing its entries are cut into blocks of at most `blockRows` rows. A block's
 * activations live in the entry regions, so its forward and backward may run anywhere.
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
  /** Blocks in the current step's block list. */
  BLOCKS: 6,
  /**
   * Blocks whose gradient failed the finite-step check in BACKWARD (see
   * engine/finite.ts); the main thread zeroes it before BACKWARD and refuses to UPDATE
   * when it is not 0 after.
   */
  BAD_GRADS: 7,
  /** Slots 8.. : per-shard sequence number of its last finished command. */
  SHARD_DONE_BASE: 8,
} as const;

/** Commands carried in CTRL.CMD. PING does no work: it measures the bare round trip. */
export const CMD = { FORWARD: 1, BACKWARD: 2, UPDATE: 3, STOP: 4, PING: 5 } as const;
export type Command = (typeof CMD)[keyof typeof CMD];
/** A step phase, as errors name it. */
export type PhaseName = 'start-up' | 'forward' | 'backward' | 'update' | 'stop' | 'ping';
/** Names of the commands (0: before the first). */
export const PHASE_NAMES: Record<number, PhaseName> = {
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

/** Bytes left unused at the start of the memory (no view ever sits at address 0). */
export const LAYOUT_BASE = 1024;

/** The sizes a session's memory is planned from. */
export interface MixtureSizes {
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
  /** Shards (worker threads); 1 in-process. */
  shards: number;
  /** Sum of the expert's hidden widths (activations kept per row). */
  expertHidden: number;
  /** Widest hidden layer of an expert. */
  expertWidest: number;
  /** Sum of the gate's hidden widths. */
  gateHidden: number;
  /** Widest hidden layer of the gate. */
  gateWidest: number;
  /** Most (row, expert) entries in one step. */
  maxEntries: number;
  /** Most blocks in one step. */
  maxBlocks: number;
  /** Most rows in one block. */
  maxBlockRows: number;
  /** Partial-gradient slots besides each expert's own gradient. */
  extraGradSlots: number;
  /** Whether experts gather their own rows (sparse routing) rather than read the batch. */
  gathers: boolean;
  /** Parameters of the noise network (noisy top-k), else 0. */
  noiseParams: number;
  /** Floats of the router bias (topk, switch), else 0. */
  routerBias: number;
}

/** Element type of a region: Float32Array, Int32Array or Float64Array. */
export type Kind = 'f32' | 'i32' | 'f64';
const BYTES: Record<Kind, number> = { f32: 4, i32: 4, f64: 8 };

/** Region names, their element type and length. */
function regionSpecs(s: MixtureSizes): [name: keyof MixtureViews, kind: Kind, length: number][] {
  const W = s.shards, B = s.maxBatch, N = s.maxEntries, R = s.maxBlockRows;
  return [
    ['control', 'i32', CTRL.SHARD_DONE_BASE + W],
    ['hyper', 'f64', 8],
    ['busy', 'f64', W * BUSY_SLOTS],
    // The batch, gathered by the main thread from the dataset (which stays outside).
    ['batchX', 'f32', B * s.inputs],
    ['batchT', 'f32', B * s.outputs],
    ['batchLabels', 'i32', B],
    // Entries: expert i's are entryRow[expertStart[i] .. expertStart[i+1]).
    ['expertStart', 'i32', s.experts + 1],
    ['entryRow', 'i32', N],
    ['entryWeight', 'f32', N],
    ['entryScore', 'f32', N],
    ['entryDot', 'f32', N],
    ['entryLse', 'f32', N],
    ['entryOut', 'f32', N * s.outputs],
    ['entryHidden', 'f32', N * s.expertHidden],
    ['entryX', 'f32', s.gathers ? N * s.inputs : 0],
    ['entryT', 'f32', s.gathers ? N * s.outputs : 0],
    ['entryLabels', 'i32', s.gathers ? N : 0],
    ['mix', 'f32', B * s.outputs],
    // Blocks of the current step, in expert order then block order.
    ['blockExpert', 'i32', s.maxBlocks],
    ['blockStart', 'i32', s.maxBlocks],
    ['blockRows', 'i32', s.maxBlocks],
    ['blockSlot', 'i32', s.maxBlocks],
    ['blockWorker', 'i32', s.maxBlocks],
    ['blockGrads', 'f32', s.extraGradSlots * s.expertParams],
    // Per-shard scratch of one block.
    ['shardDeltaA', 'f32', W * R * s.expertWidest],
    ['shardDeltaB', 'f32', W * R * s.expertWidest],
    ['shardGradOut', 'f32', W * R * s.outputs],
    ['shardMix', 'f32', s.gathers ? W * R * s.outputs : 0],
    // Parameters, gradients and optimiser state (planar): expert i at i·expertParams.
    ['expertParams', 'f32', s.experts * s.expertParams],
    ['expertGrads', 'f32', s.experts * s.expertParams],
    ['expertOpt', 'f32', s.experts * s.expertParams * s.optState],
    ['gateParams', 'f32', s.gateParams],
    ['gateGrads', 'f32', s.gateParams],
    ['gateOpt', 'f32', s.gateParams * s.optState],
    ['noiseParams', 'f32', s.noiseParams],
    ['noiseGrads', 'f32', s.noiseParams],
    ['noiseOpt', 'f32', s.noiseParams * s.optState],
    ['routerBias', 'f32', s.routerBias],
    // The main thread's: the gate and the per-entry combination.
    ['gateLogits', 'f32', B * s.experts],
    ['gateLogProb', 'f32', B * s.experts],
    ['gateProb', 'f32', B * s.experts],
    ['gateLogitGrad', 'f32', B * s.experts],
    ['gateHidden', 'f32', B * s.gateHidden],
    ['gateDeltaA', 'f32', B * s.gateWidest],
    ['gateDeltaB', 'f32', B * s.gateWidest],
    ['entryExpert', 'i32', N],
    ['entryLogWeight', 'f32', N],
    ['entryGateWeight', 'f32', N],
    ['entryDLogWeight', 'f32', N],
    ['rowStart', 'i32', B + 1],
    ['rowEntries', 'i32', N],
    ['rowScratch', 'f32', B],
    // Sparse routing's: the noise ε and its scale softplus(x·Wn + bn), the noisy logits h,
    // and each expert's rows in this step.
    ['gateNoise', 'f32', s.noiseParams > 0 ? B * s.experts : 0],
    ['noiseLogits', 'f32', s.noiseParams > 0 ? B * s.experts : 0],
    ['noisyLogits', 'f32', s.noiseParams > 0 ? B * s.experts : 0],
    ['expertLoad', 'i32', s.experts],
  ];
}

/** Typed views of every region (see regionSpecs for the shapes). */
export interface MixtureViews {
  /** Control block, indexed by the `CTRL` slots, then one slot per shard from 8. */
  control: Int32Array;
  /** Float64 hyper-parameters of the step (learning rate), 8 slots. */
  hyper: Float64Array;
  /** Per shard × command: accumulated compute milliseconds, shards×8. */
  busy: Float64Array;
  /** The batch's standardised inputs, maxBatch×D. */
  batchX: Float32Array;
  /** The batch's model-space targets, maxBatch×K. */
  batchT: Float32Array;
  /** The batch's labels (classification). */
  batchLabels: Int32Array;
  /** Expert i's entries are [expertStart[i], expertStart[i+1]). */
  expertStart: Int32Array;
  /** Batch row of each entry. */
  entryRow: Int32Array;
  /** Per-entry weight of the expert's output gradient (main thread writes). */
  entryWeight: Float32Array;
  /** Per-entry score (expert side writes in FORWARD). */
  entryScore: Float32Array;
  /** Per-entry cooperative dot (expert side writes in BACKWARD). */
  entryDot: Float32Array;
  /** Per-entry logsumexp of the logits (categorical), FORWARD → BACKWARD. */
  entryLse: Float32Array;
  /** Per-entry expert output, N×K (expert i's block contiguous). */
  entryOut: Float32Array;
  /** Per-entry hidden activations, block by block: layer l of a block at start·H + rows·offset_l. */
  entryHidden: Float32Array;
  /** Sparse: gathered inputs per entry, N×D. */
  entryX: Float32Array;
  /** Sparse: gathered targets per entry, N×K. */
  entryT: Float32Array;
  /** Sparse: gathered labels per entry. */
  entryLabels: Int32Array;
  /** Mixture output ȳ per batch row, maxBatch×K (cooperative). */
  mix: Float32Array;
  /** Expert of each block. */
  blockExpert: Int32Array;
  /** First entry of each block. */
  blockStart: Int32Array;
  /** Rows of each block. */
  blockRows: Int32Array;
  /** Gradient slot of each block: −1 for the expert's own gradient, else a blockGrads slot. */
  blockSlot: Int32Array;
  /** Shard that computes each block. */
  blockWorker: Int32Array;
  /** Partial gradients of the blocks after each expert's first, extraGradSlots×P. */
  blockGrads: Float32Array;
  /** Per shard: first delta buffer, maxBlockRows × widest hidden. */
  shardDeltaA: Float32Array;
  /** Per shard: second delta buffer. */
  shardDeltaB: Float32Array;
  /** Per shard: ∂E/∂o of the block, maxBlockRows×K. */
  shardGradOut: Float32Array;
  /** Per shard (sparse): the block's ȳ rows, maxBlockRows×K. */
  shardMix: Float32Array;
  /** All experts' parameters, expert i at i·expertParams. */
  expertParams: Float32Array;
  /** All experts' gradients, same layout. */
  expertGrads: Float32Array;
  /** All experts' optimiser state, planar. */
  expertOpt: Float32Array;
  /** Gate parameters. */
  gateParams: Float32Array;
  /** Gate gradients. */
  gateGrads: Float32Array;
  /** Gate optimiser state, planar. */
  gateOpt: Float32Array;
  /** Noisy top-k: the noise network's parameters (W D×E, b E). */
  noiseParams: Float32Array;
  /** Its gradients. */
  noiseGrads: Float32Array;
  /** Its optimiser state, planar. */
  noiseOpt: Float32Array;
  /** topk, switch: the balancing bias added to the logits when choosing. */
  routerBias: Float32Array;
  /** Gate logits u, maxBatch×E. */
  gateLogits: Float32Array;
  /** log softmax(u), maxBatch×E. */
  gateLogProb: Float32Array;
  /** softmax(u), maxBatch×E. */
  gateProb: Float32Array;
  /** ∂E/∂u, maxBatch×E. */
  gateLogitGrad: Float32Array;
  /** The gate's hidden activations, maxBatch×Hg. */
  gateHidden: Float32Array;
  /** The gate's delta buffers. */
  gateDeltaA: Float32Array;
  gateDeltaB: Float32Array;
  /** Expert of each entry. */
  entryExpert: Int32Array;
  /** log ĝ of each entry. */
  entryLogWeight: Float32Array;
  /** ĝ of each entry. */
  entryGateWeight: Float32Array;
  /** ∂E/∂log ĝ of each entry. */
  entryDLogWeight: Float32Array;
  /** Row r's entries are rowEntries[rowStart[r] .. rowStart[r+1]). */
  rowStart: Int32Array;
  /** Entry numbers grouped by row. */
  rowEntries: Int32Array;
  /** Scratch of maxBatch floats. */
  rowScratch: Float32Array;
  /** Noisy top-k: the standard normal draws ε, maxBatch×E. */
  gateNoise: Float32Array;
  /** Noisy top-k: x·Wn + bn, maxBatch×E. */
  noiseLogits: Float32Array;
  /** Noisy top-k: h = u + ε·softplus(x·Wn + bn), maxBatch×E. */
  noisyLogits: Float32Array;
  /** Rows routed to each expert in this step. */
  expertLoad: Int32Array;
}

/** Byte offsets of each region, 64-byte aligned so no two regions share a cache line. */
export interface MixtureLayout {
  /** The sizes it was planned from. */
  sizes: MixtureSizes;
  /** Bytes the memory must hold (a multiple of 64). */
  byteLength: number;
  /** Every region in memory order. */
  regions: {
    /** Region name (the key of its view). */
    name: keyof MixtureViews;
    /** Element type. */
    kind: Kind;
    /** Byte offset in the memory (64-byte aligned). */
    offset: number;
    /** Length in elements. */
    length: number;
  }[];
}

/** Plan the regions. */
export function planLayout(sizes: MixtureSizes): MixtureLayout {
  let offset = LAYOUT_BASE;
  const regions: MixtureLayout['regions'] = [];
  for (const [name, kind, length] of regionSpecs(sizes)) {
    offset = Math.ceil(offset / 64) * 64;
    regions.push({ name, kind, offset, length });
    offset += length * BYTES[kind];
  }
  return { sizes, byteLength: Math.ceil(offset / 64) * 64, regions };
}

/** Map every region of `buffer` by `layout`. */
export function mapViews(buffer: ArrayBufferLike, layout: MixtureLayout): MixtureViews {
  const v: Partial<Record<keyof MixtureViews, Int32Array | Float32Array | Float64Array>> = {};
  for (const r of layout.regions) {
    const Ctor = r.kind === 'f32' ? Float32Array : r.kind === 'i32' ? Int32Array : Float64Array;
    v[r.name] = new Ctor(buffer as ArrayBuffer, r.offset, r.length);
  }
  return v as MixtureViews;
}
