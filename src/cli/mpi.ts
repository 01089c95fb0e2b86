/**
 * `moe train --mpi`: this process is one rank of an MPI job. MPI is initialised before
 * anything else runs (the rank decides who writes); rank 0 alone prints progress and
 * summaries and writes files, the other ranks print only their errors. An abnormal exit
 * of any rank ends every rank (MPI_Abort); a stop every rank agreed on (a signal, a
 * divergence) ends each one normally, and rank 0 writes the checkpoint. An error every
 * rank checks alike (a bad option of `bench scaling --mpi`) also ends each one normally:
 * rank 0 reports it, and every rank exits 2.
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

/**
 * Run `fn`, whose error every rank should meet alike (a bad option on the same command
 * line): rank 0 alone reports it, and the job ends normally, each rank with its exit code
 * (see {@link Communicator.sameOnEveryRank}, which also covers ranks that disagree).
 */
export function sameOnEveryRank<T>(fn: () => T | Promise<T>): Promise<T> {
  return comm ? comm.sameOnEveryRank(fn, 'the check of the command line') : Promise.resolve().then(fn);
}

/** Whether this process prints `err`: not on a rank other than 0 where rank 0's report covers it. */
export function reportsError(err: unknown): boolean {
  return comm === undefined || comm.rank === 0 || !Communicator.reportedByRankZero(err);
}

/** Whether this process writes the run's files (rank 0, or no MPI). */
export function writesFiles(): boolean {
  return comm === undefined || comm.rank === 0;
}

/**
 * The bytes of a file that rank 0 reads and broadcasts (a model to resume: the other
 * ranks' hosts need not have it). Without MPI, or on rank 0, `read` reads it; a failure
 * there is rank 0's error, and the other ranks stop with one line saying so.
 */
export async function readOnRankZero(path: string, read: (path: string) => Promise<Buffer>): Promise<Buffer | undefined> {
  if (!comm) return undefined;
  let bytes: Buffer | undefined, failure: unknown;
  if (comm.rank === 0) {
    try {
      bytes = await read(path);
    } catch (err) {
      failure = err;
    }
  }
  const length = new Uint8Array(8);
  if (comm.rank === 0) new DataView(length.buffer).setFloat64(0, bytes ? bytes.length : -1, true);
  await comm.bcast(length, 0, `the length of ${path}`);
  const n = new DataView(length.buffer).getFloat64(0, true);
  if (comm.rank === 0 && failure) throw failure;
  if (n < 0) throw new MoeError('MPI_FAILED', `rank 0 could not read ${path} (its error is on rank 0's output)`);
  const out = comm.rank === 0 ? bytes! : Buffer.alloc(n);
  await comm.bcast(out, 0, `the bytes of ${path}`);
  return out;
}

/** After the error line: end every rank, unless every rank stopped at the same point on its own. */
export function endMpiAfter(err: unknown, code: number): void {
  if (!comm) return;
  const agreed = Communicator.agreed(err) || (err instanceof MoeError && (err.code === 'ABORTED' || err.code === 'DIVERGED' || err.code === 'MPI_MISMATCH'));
  if (!agreed) comm.abort(code === 0 ? 1 : code);
}
