// Piscina entry of `moe reproduce`: one independent training run per task, in-process.
import { runOneReply, type RunReply, type RunTask } from '../src/reproduce/run.js';

export default function reproduceRun(task: RunTask): Promise<RunReply> {
  return runOneReply(task);
}
