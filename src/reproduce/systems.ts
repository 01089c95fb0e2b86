/**
 * The systems of the paper's Table 1 and the two forms its mixtures can take here.
 *
 * The paper's form: linear experts whose outputs are compared with a one-hot target
 * under the Gaussian error of its eq. 1.3, E = −log Σ g_i exp(−½‖d − o_i‖²) (loss
 * `gaussian`). The other form: softmax experts under the classification NLL (loss
 * `categorical`). A backprop baseline is a one-expert mixture: the gate is then the
 * constant 1, the Gaussian error reduces to ½‖d − o‖² (squared error on one-hot targets,
 * as backprop was run in 1991) and the categorical one to cross-entropy.
 */
import type { Activation } from '../model/mlp.js';

export type Form = 'gaussian' | 'categorical';

/** One row of the table. */
export interface SystemSpec {
  /** JSON key: moe4, moe8, bp6, bp12; the categorical form adds `_categorical`. */
  key: string;
  /** Row label in the table. */
  label: string;
  kind: 'mixture' | 'backprop';
  experts: number;
  /** Expert network as Mixture.create spells it: `linear` or `mlp:H:activation`. */
  expert: string;
  loss: Form;
  /** Hidden units of the backprop net (0 for mixtures). */
  hidden: number;
  /** The row of the paper's Table 1 this system stands for. */
  base: 'moe4' | 'moe8' | 'bp6' | 'bp12';
  /** Set on the backprop nets of the sensitivity check, which swap the hidden activation. */
  variant?: Activation;
}

/**
 * The paper's row labels, with its numbers, for the side-by-side table. Transcribed from
 * the paper's Table 1; no copy of the paper could be consulted where this was written, so
 * the figures are unchecked against the printed table (the markdown says so).
 */
export const PAPER_TABLE_1: Readonly<Record<'moe4' | 'moe8' | 'bp6' | 'bp12', { label: string; train: number; test: number; epochs: number; epochsSd: number }>> = {
  moe4: { label: '4 Experts', train: 88, test: 90, epochs: 1124, epochsSd: 23 },
  moe8: { label: '8 Experts', train: 88, test: 90, epochs: 1083, epochsSd: 12 },
  bp6: { label: 'BP 6 Hid', train: 88, test: 90, epochs: 2209, epochsSd: 83 },
  bp12: { label: 'BP 12 Hid', train: 88, test: 90, epochs: 2435, epochsSd: 124 },
};

/** The activation the sensitivity rows swap in for the backprop nets' own. */
export function alternativeActivation(a: Activation): Activation {
  return a === 'sigmoid' ? 'tanh' : 'sigmoid';
}

/**
 * Every system: the paper's form first (moe4, moe8, bp6, bp12), then the `_categorical`
 * four, then the paper's form of the backprop nets with the other hidden activation
 * (`bp6_tanh`, `bp12_tanh` by default), which checks how much the speed comparison
 * hangs on that choice.
 */
export function jacobs1991Systems(bpActivation: Activation = 'sigmoid'): SystemSpec[] {
  const out: SystemSpec[] = [];
  const bp = (h: 6 | 12, loss: Form, act: Activation, key: string): SystemSpec => ({
    key,
    label: `backprop, ${h} ${act} hidden, ${loss === 'gaussian' ? 'squared error' : 'softmax, cross-entropy'}`,
    kind: 'backprop',
    experts: 1,
    expert: `mlp:${h}:${act}`,
    loss,
    hidden: h,
    base: h === 6 ? 'bp6' : 'bp12',
  });
  for (const loss of ['gaussian', 'categorical'] as const) {
    const suffix = loss === 'gaussian' ? '' : '_categorical';
    const form = loss === 'gaussian' ? 'one-hot targets, Gaussian error of eq. 1.3' : 'softmax experts, categorical NLL';
    for (const e of [4, 8] as const) {
      out.push({ key: `moe${e}${suffix}`, label: `${e} linear experts, ${form}`, kind: 'mixture', experts: e, expert: 'linear', loss, hidden: 0, base: e === 4 ? 'moe4' : 'moe8' });
    }
    for (const h of [6, 12] as const) out.push(bp(h, loss, bpActivation, `bp${h}${suffix}`));
  }
  const alt = alternativeActivation(bpActivation);
  for (const h of [6, 12] as const) out.push({ ...bp(h, 'gaussian', alt, `bp${h}_${alt}`), variant: alt });
  return out;
}
