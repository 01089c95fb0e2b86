// Piscina entry of a shard worker: the piscina task is runShard itself (src/parallel/shard.ts).
export { runShard as default } from '../src/parallel/shard.js';
