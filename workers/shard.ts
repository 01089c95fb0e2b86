// Piscina entry of a shard worker: wires the task's shared memory to src/parallel/shard.
import { runShard, type ShardResult, type ShardTask } from '../src/parallel/shard.js';

export default function shard(task: ShardTask): Promise<ShardResult> {
  return runShard(task);
}
