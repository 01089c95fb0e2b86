/**
 * The MPI library, called through koffi: found by its usual sonames (or MOE_MPI_LIBRARY),
 * identified with MPI_Get_library_version before any handle is used, and bound for the
 * few calls this library makes. Only the MPICH ABI is supported (MPICH, Intel MPI,
 * MVAPICH, Cray MPICH: handles are plain integers, values from MPICH's mpi.h); Open MPI's
 * handles are addresses of exported globals, and it is refused in one line.
 */
import { createRequire } from 'node:module';
import { MoeError } from '../errors.js';

/** MPICH ABI handles and constants (mpi.h). */
export const MPI = {
  COMM_WORLD: 0x44000000,
  INT: 0x4c000405,
  FLOAT: 0x4c00040a,
  BYTE: 0x4c00010d,
  SUM: 0x58000003,
  MAX: 0x58000001,
  /** MPI_IN_PLACE is (void *) −1. */
  IN_PLACE: -1,
  /** MPI_STATUS_IGNORE is (MPI_Status *) 1. */
  STATUS_IGNORE: 1,
  REQUEST_NULL: 0x2c000000,
  ERRORS_RETURN: 0x54000001,
  THREAD_FUNNELED: 1,
  SUCCESS: 0,
  MAX_LIBRARY_VERSION_STRING: 8192,
} as const;

/** Sonames tried in order when MOE_MPI_LIBRARY is not set. */
export const DEFAULT_MPI_LIBRARIES: readonly string[] = ['libmpich.so.12', 'libmpi.so.12', 'libmpi.so'];

/** The calls this library makes, as koffi functions. */
export interface MpiCalls {
  initThread(argc: null, argv: null, required: number, provided: Int32Array): number;
  initialized(flag: Int32Array): number;
  finalized(flag: Int32Array): number;
  finalize(): number;
  commRank(comm: number, rank: Int32Array): number;
  commSize(comm: number, size: Int32Array): number;
  setErrhandler(comm: number, handler: number): number;
  getLibraryVersion(out: Uint8Array, len: Int32Array): number;
  iallgatherv(send: number, sendCount: number, sendType: number, recv: ArrayBufferView, counts: Int32Array, displs: Int32Array, recvType: number, comm: number, request: Int32Array): number;
  iallreduce(send: number, recv: ArrayBufferView, count: number, type: number, op: number, comm: number, request: Int32Array): number;
  ibcast(buf: ArrayBufferView, count: number, type: number, root: number, comm: number, request: Int32Array): number;
  test(request: Int32Array, flag: Int32Array, status: number): number;
  abort(comm: number, code: number): number;
}

/** A loaded MPI library: its path, its version string and its calls. */
export interface MpiLibrary {
  path: string;
  version: string;
  calls: MpiCalls;
}

/** Is this version string an MPICH-ABI library? */
export function isMpichAbi(version: string): boolean {
  return /MPICH|Intel\(R\) MPI|MVAPICH|CRAY MPICH/i.test(version) && !/Open MPI/i.test(version);
}

/** Load and identify the MPI library; throws MoeError('MPI_UNAVAILABLE') in one line. */
export function loadMpi(library = process.env.MOE_MPI_LIBRARY): MpiLibrary {
  let koffi: typeof import('koffi');
  try {
    koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  } catch (err) {
    throw new MoeError('MPI_UNAVAILABLE', `--mpi needs koffi, which did not load (${(err as Error).message.split('\n')[0]})`);
  }
  const candidates = library !== undefined && library !== '' ? [library] : DEFAULT_MPI_LIBRARIES;
  const tried: string[] = [];
  for (const path of candidates) {
    let lib: ReturnType<typeof koffi.load>;
    try {
      lib = koffi.load(path);
    } catch (err) {
      tried.push(`${path}: ${(err as Error).message.split('\n')[0]!.replace(/^Failed to load shared library:\s*/, '')}`);
      continue;
    }
    const f = (sig: string): ((...a: unknown[]) => number) => lib.func(sig) as (...a: unknown[]) => number;
    let getLibraryVersion: (out: Uint8Array, len: Int32Array) => number;
    try {
      getLibraryVersion = f('int MPI_Get_library_version(_Out_ uint8_t *version, _Out_ int *len)');
    } catch {
      tried.push(`${path}: no MPI_Get_library_version`);
      continue;
    }
    const buf = new Uint8Array(MPI.MAX_LIBRARY_VERSION_STRING), len = new Int32Array(1);
    getLibraryVersion(buf, len);
    const version = Buffer.from(buf.subarray(0, Math.max(0, Math.min(len[0]!, buf.length)))).toString('latin1').replace(/\0.*$/s, '').trim();
    if (!isMpichAbi(version)) {
      throw new MoeError('MPI_UNAVAILABLE', `${path} is ${version.split('\n')[0]}: only the MPICH ABI is supported (MPICH, Intel MPI, MVAPICH); run under mpiexec.mpich with libmpich.so.12, or name it with MOE_MPI_LIBRARY`);
    }
    const calls: MpiCalls = {
      initThread: f('int MPI_Init_thread(void *argc, void *argv, int required, _Out_ int *provided)'),
      initialized: f('int MPI_Initialized(_Out_ int *flag)'),
      finalized: f('int MPI_Finalized(_Out_ int *flag)'),
      finalize: f('int MPI_Finalize()'),
      commRank: f('int MPI_Comm_rank(int comm, _Out_ int *rank)'),
      commSize: f('int MPI_Comm_size(int comm, _Out_ int *size)'),
      setErrhandler: f('int MPI_Comm_set_errhandler(int comm, int handler)'),
      getLibraryVersion,
      // Non-blocking collectives work on the caller's views in place: koffi passes a typed
      // array's own memory (no copy), which must stay alive and unmoved until MPI_Test
      // says the request is complete (shared kernel memory never moves).
      iallgatherv: f('int MPI_Iallgatherv(intptr_t sendbuf, int sendcount, int sendtype, void *recvbuf, int *recvcounts, int *displs, int recvtype, int comm, int *request)'),
      iallreduce: f('int MPI_Iallreduce(intptr_t sendbuf, void *recvbuf, int count, int type, int op, int comm, int *request)'),
      ibcast: f('int MPI_Ibcast(void *buf, int count, int type, int root, int comm, int *request)'),
      test: f('int MPI_Test(int *request, _Out_ int *flag, intptr_t status)'),
      abort: f('int MPI_Abort(int comm, int code)'),
    };
    return { path, version, calls };
  }
  throw new MoeError('MPI_UNAVAILABLE', `--mpi: no MPI library loaded (${tried.join('; ')}); apt-get install mpich, or name the library with MOE_MPI_LIBRARY`);
}
