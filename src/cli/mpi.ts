/**
 * `moe train --mpi`: this process is one rank of an MPI job. MPI is initialised before
 * anything else runs (the rank decides who writes); rank 0 alone prints progress and
 * summaries and writes files, the other ranks print only their errors. An abnormal exit
 * of any rank ends every rank (MPI_Abort); a stop every rank agreed on (a signal, a
 * divergence) ends each one normally, and rank 0 writes the checkpoint.
 */
import { MoeError } from '../errors.js';
import { Communicator } from '../mpi/communicator.js';

let comm: Communicator | undefined;

/** Join the MPI job; ranks other than 0 are silenced but for errors. Returns the rank. */
export function joinMpi(): number {
  comm = Communicator.world();
  if (comm.rank !== 0) {
    const err = process.stderr.write.bind(process.stderr);
    process.stdout.write = (() => true) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      return /^moe: error/.test(text) ? err(`rank ${comm!.rank}: ${text}`, ...rest) : true;
    }) as typeof process.stderr.write;
  }
  return comm.rank;
}

/** Whether this process writes the run's files (rank 0, or no MPI). */
export function writesFiles(): boolean {
  return comm === undefined || comm.rank === 0;
}

/** After the error line: end every rank, unless every rank stopped at the same point on its own. */
export function endMpiAfter(err: unknown, code: number): void {
  if (!comm) return;
  const agreed = err instanceof MoeError && (err.code === 'ABORTED' || err.code === 'DIVERGED' || err.code === 'MPI_MISMATCH');
  if (!agreed) comm.abort(code === 0 ? 1 : code);
}
