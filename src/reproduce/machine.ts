/**
 * The machine a result was measured on, for the headers of published results: the CPU
 * model as the OS reports it, the cores this process may use, and the hardware threads per
 * core (SMT), read from Linux's CPU topology (undefined elsewhere).
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';

export interface MachineInfo {
  /** CPU model as the OS reports it (`lscpu`'s "Model name"). */
  cpuModel: string;
  /** Cores (logical CPUs) available to this process. */
  cores: number;
  /** Hardware threads per physical core: 1 = no SMT; undefined where the OS does not say. */
  threadsPerCore: number | undefined;
}

/** Count the CPUs of a Linux CPU list such as `0-1,4`. */
function countCpuList(list: string): number {
  let n = 0;
  for (const part of list.trim().split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a)) return NaN;
    n += b === undefined ? 1 : b - a + 1;
  }
  return n;
}

export function machineInfo(): MachineInfo {
  let threadsPerCore: number | undefined;
  try {
    const n = countCpuList(readFileSync('/sys/devices/system/cpu/cpu0/topology/thread_siblings_list', 'utf8'));
    if (Number.isInteger(n) && n > 0) threadsPerCore = n;
  } catch {
    threadsPerCore = undefined;
  }
  return { cpuModel: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), threadsPerCore };
}

/** `AMD EPYC, 2 cores, no SMT` (or `…, 2 threads per core (SMT)`, or `…, SMT unknown`). */
export function machineText(m: MachineInfo): string {
  const smt = m.threadsPerCore === undefined ? 'SMT unknown' : m.threadsPerCore === 1 ? 'no SMT' : `${m.threadsPerCore} threads per core (SMT)`;
  return `${m.cpuModel}, ${m.cores} cores, ${smt}`;
}
