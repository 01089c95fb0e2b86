// Piscina entry of `moe reproduce`: one independent training run per task, in-process.
import { runOne, type RunResult, type RunTask } from '../src/reproduce/run.js';

export default function reproduceRun(task: RunTask): Promise<RunResult> {
  return runOne(task);
}
