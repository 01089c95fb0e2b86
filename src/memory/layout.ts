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
type ViewOf<K extends Kind> = K extends 'f32' ? Float32Array : K extends 'i32' ? Int32Array : Float64Array;

/**
 * The index spaces every region is measured in (its length is a product of these):
 *   rows      a batch's rows, < maxBatch
 *   entries   (row, expert) pairs of a step, expert-major, < maxEntries
 *   blocks    runs of one expert's entries, < maxBlocks
 *   slots     partial-gradient slots of the blocks after each expert's first, < extraGradSlots
 *   experts   < E
 *   shards    worker threads (1 in-process), < shards
 */
export type IndexSpace = 'rows' | 'entries' | 'blocks' | 'slots' | 'experts' | 'shards';

/**
 * Who owns a region (writes it), and so which phases are handed it:
 *   control     the main thread and the shards' handshake
 *   batch       the batch gathered from the dataset
 *   gate        the gate's (and the noise network's) parameters, activations and gradients
 *   plan        the routing plan: entries, their weights and blocks (src/engine/routing-plan.ts)
 *   experts     the expert side: parameters, gradients, per-entry activations, per-shard scratch
 *   loss        the error function's main side: per-entry weights, the mixture
 *   optimiser   optimiser state
 */
export type RegionGroup = 'control' | 'batch' | 'gate' | 'plan' | 'experts' | 'loss' | 'optimiser';
// Each part of a step is typed with only the groups it reads or writes (GroupRegions), so
// the compiler refuses a reach into another's: the routing plan `plan`
// (engine/routing-plan.ts), the router RouterViews (engine/routing.ts), the balancing
// terms BalanceViews (engine/balance.ts), the expert side ExpertViews, never `gate`
// (engine/expert-side.ts), each error function's main side MainLossViews
// (losses/error-function.ts). Only the step that orders them (engine/step.ts) holds all.

/** The steps of a training step, in order (FORWARD, BACKWARD, UPDATE are the shards' commands). */
export type StepStage = 'gather' | 'gate' | 'route' | 'forward' | 'combine' | 'backward' | 'update';

/** Which groups each phase writes: the one place that says it. */
export const PHASE_WRITES: Readonly<Record<StepStage, readonly RegionGroup[]>> = {
  gather: ['batch'],
  gate: ['gate'],
  route: ['plan', 'gate'], // the noisy logits
  forward: ['experts'],
  combine: ['loss'],
  backward: ['experts', 'gate'],
  update: ['experts', 'gate', 'optimiser', 'plan'], // the plan's balancing bias
};

interface RegionSpec {
  kind: Kind;
  group: RegionGroup;
  length: (s: MixtureSizes) => number;
}

const noise = (s: MixtureSizes, n: number): number => (s.noiseParams > 0 ? n : 0);
const gathered = (s: MixtureSizes, n: number): number => (s.gathers ? n : 0);

/**
 * Every region, once: its element type, owner and length (in memory order). The views'
 * type ({@link MixtureViews}), the offsets ({@link planLayout}) and the views themselves
 * ({@link mapViews}) all come from this table.
 */
const REGIONS = {
  /** Control block, indexed by the `CTRL` slots, then one slot per shard from 8. */
  control: { kind: 'i32', group: 'control', length: (s) => CTRL.SHARD_DONE_BASE + s.shards },
  /** Float64 hyper-parameters of the step (learning rate), 8 slots. */
  hyper: { kind: 'f64', group: 'control', length: () => 8 },
  /** Per shard × command: accumulated compute milliseconds, shards×8. */
  busy: { kind: 'f64', group: 'control', length: (s) => s.shards * BUSY_SLOTS },
  /** The finite-step check's squared gradient norms: one float per shard, then the main thread's. */
  gradNorms: { kind: 'f32', group: 'control', length: (s) => s.shards + 1 },
  /** The batch's standardised inputs, rows×D. */
  batchX: { kind: 'f32', group: 'batch', length: (s) => s.maxBatch * s.inputs },
  /** The batch's model-space targets, rows×K. */
  batchT: { kind: 'f32', group: 'batch', length: (s) => s.maxBatch * s.outputs },
  /** The batch's labels (classification), rows. */
  batchLabels: { kind: 'i32', group: 'batch', length: (s) => s.maxBatch },
  /** Expert i's entries are [expertStart[i], expertStart[i+1]), experts + 1. */
  expertStart: { kind: 'i32', group: 'plan', length: (s) => s.experts + 1 },
  /** Batch row of each entry. */
  entryRow: { kind: 'i32', group: 'plan', length: (s) => s.maxEntries },
  /** Per-entry weight of the expert's output gradient (the loss's main side writes). */
  entryWeight: { kind: 'f32', group: 'loss', length: (s) => s.maxEntries },
  /** Per-entry score (the expert side writes in FORWARD). */
  entryScore: { kind: 'f32', group: 'experts', length: (s) => s.maxEntries },
  /** Per-entry cooperative dot (the expert side writes in BACKWARD). */
  entryDot: { kind: 'f32', group: 'experts', length: (s) => s.maxEntries },
  /** Per-entry logsumexp of the logits (categorical), FORWARD → BACKWARD. */
  entryLse: { kind: 'f32', group: 'experts', length: (s) => s.maxEntries },
  /** Per-entry expert output, entries×K (an expert's entries contiguous). */
  entryOut: { kind: 'f32', group: 'experts', length: (s) => s.maxEntries * s.outputs },
  /** Per-entry hidden activations, block by block: layer l of a block at start·H + rows·offset_l. */
  entryHidden: { kind: 'f32', group: 'experts', length: (s) => s.maxEntries * s.expertHidden },
  /** Sparse: gathered inputs per entry, entries×D. */
  entryX: { kind: 'f32', group: 'experts', length: (s) => gathered(s, s.maxEntries * s.inputs) },
  /** Sparse: gathered targets per entry, entries×K. */
  entryT: { kind: 'f32', group: 'experts', length: (s) => gathered(s, s.maxEntries * s.outputs) },
  /** Sparse: gathered labels per entry. */
  entryLabels: { kind: 'i32', group: 'experts', length: (s) => gathered(s, s.maxEntries) },
  /** Mixture output ȳ per batch row, rows×K (cooperative). */
  mix: { kind: 'f32', group: 'loss', length: (s) => s.maxBatch * s.outputs },
  /** Expert of each block. */
  blockExpert: { kind: 'i32', group: 'plan', length: (s) => s.maxBlocks },
  /** First entry of each block. */
  blockStart: { kind: 'i32', group: 'plan', length: (s) => s.maxBlocks },
  /** Rows of each block. */
  blockRows: { kind: 'i32', group: 'plan', length: (s) => s.maxBlocks },
  /** Gradient slot of each block: −1 for the expert's own gradient, else a blockGrads slot. */
  blockSlot: { kind: 'i32', group: 'plan', length: (s) => s.maxBlocks },
  /** Shard that computes each block. */
  blockWorker: { kind: 'i32', group: 'plan', length: (s) => s.maxBlocks },
  /** Partial gradients of the blocks after each expert's first, slots×P. */
  blockGrads: { kind: 'f32', group: 'experts', length: (s) => s.extraGradSlots * s.expertParams },
  /** Per shard: first delta buffer, maxBlockRows × widest hidden. */
  shardDeltaA: { kind: 'f32', group: 'experts', length: (s) => s.shards * s.maxBlockRows * s.expertWidest },
  /** Per shard: second delta buffer. */
  shardDeltaB: { kind: 'f32', group: 'experts', length: (s) => s.shards * s.maxBlockRows * s.expertWidest },
  /** Per shard: ∂E/∂o of the block, maxBlockRows×K. */
  shardGradOut: { kind: 'f32', group: 'experts', length: (s) => s.shards * s.maxBlockRows * s.outputs },
  /** Per shard (sparse): the block's ȳ rows, maxBlockRows×K. */
  shardMix: { kind: 'f32', group: 'experts', length: (s) => gathered(s, s.shards * s.maxBlockRows * s.outputs) },
  /** All experts' parameters, expert i at i·expertParams. */
  expertParams: { kind: 'f32', group: 'experts', length: (s) => s.experts * s.expertParams },
  /** All experts' gradients, same layout. */
  expertGrads: { kind: 'f32', group: 'experts', length: (s) => s.experts * s.expertParams },
  /** All experts' optimiser state, planar. */
  expertOpt: { kind: 'f32', group: 'optimiser', length: (s) => s.experts * s.expertParams * s.optState },
  /** Gate parameters. */
  gateParams: { kind: 'f32', group: 'gate', length: (s) => s.gateParams },
  /** Gate gradients. */
  gateGrads: { kind: 'f32', group: 'gate', length: (s) => s.gateParams },
  /** Gate optimiser state, planar. */
  gateOpt: { kind: 'f32', group: 'optimiser', length: (s) => s.gateParams * s.optState },
  /** Noisy top-k: the noise network's parameters (W D×E, b E). */
  noiseParams: { kind: 'f32', group: 'gate', length: (s) => s.noiseParams },
  /** Its gradients. */
  noiseGrads: { kind: 'f32', group: 'gate', length: (s) => s.noiseParams },
  /** Its optimiser state, planar. */
  noiseOpt: { kind: 'f32', group: 'optimiser', length: (s) => s.noiseParams * s.optState },
  /** topk, switch: the balancing bias added to the logits when choosing, experts. */
  routerBias: { kind: 'f32', group: 'plan', length: (s) => s.routerBias },
  /** Gate logits u, rows×E. */
  gateLogits: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.experts },
  /** log softmax(u), rows×E. */
  gateLogProb: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.experts },
  /** softmax(u), rows×E. */
  gateProb: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.experts },
  /** ∂E/∂u, rows×E. */
  gateLogitGrad: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.experts },
  /** The gate's hidden activations, rows×Hg. */
  gateHidden: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.gateHidden },
  /** The gate's first delta buffer. */
  gateDeltaA: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.gateWidest },
  /** The gate's second delta buffer. */
  gateDeltaB: { kind: 'f32', group: 'gate', length: (s) => s.maxBatch * s.gateWidest },
  /** Expert of each entry. */
  entryExpert: { kind: 'i32', group: 'plan', length: (s) => s.maxEntries },
  /** log ĝ of each entry. */
  entryLogWeight: { kind: 'f32', group: 'plan', length: (s) => s.maxEntries },
  /** ĝ of each entry. */
  entryGateWeight: { kind: 'f32', group: 'plan', length: (s) => s.maxEntries },
  /** ∂E/∂log ĝ of each entry (the loss's main side writes). */
  entryDLogWeight: { kind: 'f32', group: 'loss', length: (s) => s.maxEntries },
  /** Row r's entries are rowEntries[rowStart[r] .. rowStart[r+1]), rows + 1. */
  rowStart: { kind: 'i32', group: 'plan', length: (s) => s.maxBatch + 1 },
  /** Entry numbers grouped by row. */
  rowEntries: { kind: 'i32', group: 'plan', length: (s) => s.maxEntries },
  /** Scratch of one float per row. */
  rowScratch: { kind: 'f32', group: 'loss', length: (s) => s.maxBatch },
  /** Noisy top-k: the standard normal draws ε, rows×E. */
  gateNoise: { kind: 'f32', group: 'gate', length: (s) => noise(s, s.maxBatch * s.experts) },
  /** Noisy top-k: x·Wn + bn, rows×E. */
  noiseLogits: { kind: 'f32', group: 'gate', length: (s) => noise(s, s.maxBatch * s.experts) },
  /** Noisy top-k: h = u + ε·softplus(x·Wn + bn), rows×E. */
  noisyLogits: { kind: 'f32', group: 'gate', length: (s) => noise(s, s.maxBatch * s.experts) },
  /** Rows routed to each expert in this step, experts. */
  expertLoad: { kind: 'i32', group: 'plan', length: (s) => s.experts },
} as const satisfies Record<string, RegionSpec>;

/** Name of a region. */
export type RegionName = keyof typeof REGIONS;

/** Typed views of every region (documented in the region table). */
export type MixtureViews = { -readonly [N in RegionName]: ViewOf<(typeof REGIONS)[N]['kind']> };

/** The regions a group owns. */
export type GroupRegions<G extends RegionGroup> = { [N in RegionName as (typeof REGIONS)[N]['group'] extends G ? N : never]: MixtureViews[N] };

/** The owner of each region. */
export function regionGroup(name: RegionName): RegionGroup {
  return REGIONS[name].group;
}

/** The views of one group's regions (for a phase that is handed only that group). */
export function groupViews<G extends RegionGroup>(v: GroupRegions<G>, group: G): GroupRegions<G> {
  const out: Partial<Record<RegionName, MixtureViews[RegionName]>> = {};
  for (const name of Object.keys(REGIONS) as RegionName[]) if (REGIONS[name].group === group) out[name] = (v as Partial<MixtureViews>)[name];
  return out as GroupRegions<G>;
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
  for (const name of Object.keys(REGIONS) as RegionName[]) {
    const { kind } = REGIONS[name], length = (REGIONS[name] as RegionSpec).length(sizes);
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
