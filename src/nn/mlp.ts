/**
 * Forward and backward passes of an MLP (src/model/mlp.ts) on views: every matrix product
 * through the provider's sgemm, every element-wise loop through the kernel set. Nothing
 * here allocates; the caller hands in the activations to keep and the delta buffers.
 *
 *   forward:   z_l = a_{l−1}·W_l + b_l,  a_l = act(z_l) (hidden), out = z_L
 *   backward:  ∂E/∂W_l = a_{l−1}ᵀ·δ_l,  ∂E/∂b_l = Σ_rows δ_l,  δ_{l−1} = (δ_l·W_lᵀ) ⊙ act′(a_{l−1})
 */
import type { Sgemm } from '../compute/provider.js';
import { squaredNorm } from '../kernels/index.js';
import type { Kernels } from '../kernels/types.js';
import type { LayerViews, MlpShape } from '../model/mlp.js';

/** What one pass of one network runs on (all views; made once, reused every step). */
export interface MlpPass {
  /** The network. */
  shape: MlpShape;
  /** Its parameters, per layer. */
  params: LayerViews;
  /** Where backward writes ∂E/∂θ, per layer (may be absent for inference). */
  grads?: LayerViews;
  /** Activations of each hidden layer, ≥ rows×n_l each, kept from forward for backward. */
  hidden: Float32Array[];
  /** Two ping-pong buffers for the deltas, ≥ rows × widest hidden layer each. */
  deltaA: Float32Array;
  deltaB: Float32Array;
}

/** Forward pass: `out (rows×n_L) = f(x (rows×n_0))`; hidden activations kept in `p.hidden`. */
export function mlpForward(gemm: Sgemm, kernels: Kernels, p: MlpPass, x: Float32Array, rows: number, out: Float32Array): void {
  const s = p.shape.sizes;
  const L = p.params.w.length;
  let input = x;
  for (let l = 0; l < L; l++) {
    const nin = s[l]!, nout = s[l + 1]!;
    const last = l === L - 1;
    const z = last ? out : p.hidden[l]!;
    if (last) {
      // z = b_l (every row), then z += input·W_l: the bias add happens inside sgemm.
      kernels.biasRows(z, p.params.b[l]!, rows, nout);
      gemm(false, false, rows, nout, nin, 1, input, p.params.w[l]!, 1, z);
    } else {
      // z = input·W_l, then z = f(z + b_l) in one pass over z.
      gemm(false, false, rows, nout, nin, 1, input, p.params.w[l]!, 0, z);
      kernels.biasActivate(p.shape.activation, z, p.params.b[l]!, rows, nout);
    }
    input = z;
  }
}

/**
 * Backward pass for one batch: given `gradOut = ∂E/∂out` (rows×n_L), write ∂E/∂θ into
 * `p.grads` (overwritten, not accumulated). `x` and `p.hidden` must hold the batch of the
 * last {@link mlpForward}. `gradOut` is left unchanged.
 *
 * With `normOut` (one float of the kernel memory, scratch) it also returns an upper bound
 * on ‖∂E/∂θ‖² = Σ_l ‖∂E/∂W_l‖² + ‖∂E/∂b_l‖², for the finite-step check (engine/finite.ts):
 * per layer the bias gradient's exact Σ b², and for the weights the cheaper of their exact
 * Σ (nin·nout values) and ‖a_{l−1}‖²·‖δ_l‖² (Cauchy–Schwarz: ‖a_{l−1}ᵀδ_l‖_F ≤
 * ‖a_{l−1}‖_F ‖δ_l‖_F; rows·(nin + nout) values, far fewer for a sparse block of a few
 * rows). NaN or +∞ where a value it read is not finite. Without `normOut`: 0.
 */
export function mlpBackward(gemm: Sgemm, kernels: Kernels, p: MlpPass, x: Float32Array, rows: number, gradOut: Float32Array, normOut?: Float32Array): number {
  const s = p.shape.sizes;
  const g = p.grads!;
  let delta = gradOut;
  let spare = p.deltaA;
  let bound = 0;
  for (let l = p.params.w.length - 1; l >= 0; l--) {
    const nin = s[l]!, nout = s[l + 1]!;
    const input = l === 0 ? x : p.hidden[l - 1]!;
    gemm(true, false, nin, nout, rows, 1, input, delta, 0, g.w[l]!);
    kernels.colSums(delta, rows, nout, g.b[l]!);
    if (normOut) {
      const weights = rows * (nin + nout) < nin * nout ? squaredNorm(kernels, input, rows * nin, normOut) * squaredNorm(kernels, delta, rows * nout, normOut) : squaredNorm(kernels, g.w[l]!, nin * nout, normOut);
      bound += weights + squaredNorm(kernels, g.b[l]!, nout, normOut);
    }
    if (l > 0) {
      gemm(false, true, rows, nin, nout, 1, delta, p.params.w[l]!, 0, spare);
      kernels.activateBackward(p.shape.activation, spare, p.hidden[l - 1]!, rows * nin);
      delta = spare;
      spare = spare === p.deltaA ? p.deltaB : p.deltaA;
    }
  }
  return bound;
}

