/**
 * Seeded pseudo-random numbers (sfc32: small, fast, passes PractRand to 2^40 bytes) with
 * a state that can be saved in a checkpoint and restored, so a resumed run draws the
 * same shuffles as an uninterrupted one.
 */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number | readonly number[]) {
    if (typeof seed === 'number') {
      // splitmix32 spreads one 32-bit seed over the 128-bit state.
      let x = seed >>> 0;
      const next = (): number => {
        x = (x + 0x9e3779b9) >>> 0;
        let z = x;
        z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
        z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
        return (z ^ (z >>> 16)) >>> 0;
      };
      this.s = Uint32Array.of(next(), next(), next(), next());
      for (let i = 0; i < 12; i++) this.nextU32();
    } else {
      if (seed.length !== 4) throw new RangeError('Rng state must have 4 words');
      this.s = Uint32Array.from(seed);
    }
  }

  /** The full state, for checkpoints. */
  state(): number[] {
    return Array.from(this.s);
  }

  /** Next raw 32-bit output, an integer in [0, 2³²). */
  nextU32(): number {
    const s = this.s;
    const a = s[0]!, b = s[1]!, c = s[2]!, d = s[3]!;
    const t = (((a + b) >>> 0) + d) >>> 0;
    s[3] = (d + 1) >>> 0;
    s[0] = b ^ (b >>> 9);
    s[1] = (c + (c << 3)) >>> 0;
    s[2] = ((c << 21) | (c >>> 11)) >>> 0;
    s[2] = (s[2]! + t) >>> 0;
    return t;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<
    T extends {
      /** Number of elements. */
      length: number;
      [i: number]: unknown;
    },
  >(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
    return a;
  }
}
