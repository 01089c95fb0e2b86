import { BackendError } from '../errors.js';
import type { BackendName, ComputeProvider, Sgemm } from './provider.js';

type Tf = typeof import('@tensorflow/tfjs-core');

/**
 * sgemm on a tfjs backend. tfjs cannot read our views in place, so operands are copied
 * into tensors and the product copied back; every tensor is disposed (tf.tidy plus an
 * explicit dispose of the one result that leaves it), so memory stays flat.
 */
function tfjsSgemm(tf: Tf, backend: string): Sgemm {
  return (transA, transB, M, N, K, alpha, A, B, beta, C) => {
    if (M === 0 || N === 0) return;
    // tfjs has one global backend per thread: loading another provider later would
    // silently move this one's products there while its name still says otherwise.
    if (tf.getBackend() !== backend) throw new BackendError(`tfjs backend is now ${tf.getBackend()}, this provider was loaded as ${backend}`);
    const result = tf.tidy(() => {
      // tfjs copies typed arrays it is given; slice() also detaches us from any
      // SharedArrayBuffer, which tfjs does not expect.
      const a = tf.tensor2d(A.slice(0, M * K), transA ? [K, M] : [M, K]);
      const b = tf.tensor2d(B.slice(0, K * N), transB ? [N, K] : [K, N]);
      // tfjs-wasm reaches XNNPACK only with untransposed operands (measured here: 21
      // GFLOP/s plain, 1–2 with the transpose flags), so transpose explicitly first.
      return tf.matMul(transA ? tf.transpose(a) : a, transB ? tf.transpose(b) : b);
    });
    let p: Float32Array;
    try {
      p = result.dataSync() as Float32Array;
    } finally {
      result.dispose();
    }
    const n = M * N;
    if (beta === 0) {
      if (alpha === 1) C.set(p.subarray(0, n));
      else for (let i = 0; i < n; i++) C[i] = alpha * p[i]!;
    } else {
      for (let i = 0; i < n; i++) C[i] = alpha * p[i]! + beta * C[i]!;
    }
  };
}

/** Load a tfjs backend (`tensorflow`, `wasm` or `cpu`) and wrap it as a provider. */
export async function loadTfjs(name: Exclude<BackendName, 'blas'>): Promise<ComputeProvider> {
  const tf = await import('@tensorflow/tfjs-core');
  if (name === 'tensorflow') {
    // Optional peer dependency: present only where the user installed it.
    const pkg = '@tensorflow/tfjs-node';
    await import(pkg);
    if (!(await tf.setBackend('tensorflow'))) throw new Error('tfjs-node backend did not initialise');
  } else if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // One thread per worker: the workers are the parallelism.
    wasm.setThreadsCount(1);
    if (!(await tf.setBackend('wasm'))) throw new Error('tfjs wasm backend did not initialise');
  } else {
    await import('@tensorflow/tfjs-backend-cpu');
    if (!(await tf.setBackend('cpu'))) throw new Error('tfjs cpu backend did not initialise');
  }
  await tf.ready();
  return { name, detail: `tfjs ${tf.version_core} ${tf.getBackend()}`, sgemm: tfjsSgemm(tf, tf.getBackend()) };
}
