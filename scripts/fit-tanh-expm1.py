#!/usr/bin/env python3
"""Fit of the tanh kernel's expm1 polynomial (src/kernels/constants.ts, TQ0..TQ3).

expm1(r) = r + r^2 * Q(r) on |r| <= ln2/2, Q of degree 3, minimising the maximum RELATIVE error
of expm1 (a linear program on a dense grid, scipy's HiGHS). Prints the float32 coefficients.
The kernel's accuracy is then checked over every float32 by test/kernels.test.ts.
Usage: python3 scripts/fit-tanh-expm1.py   (needs numpy and scipy)
"""
import numpy as np
from scipy.optimize import linprog

R, N, DEG = 0.3466, 4000, 3
r = np.linspace(-R, R, N)
r = r[np.abs(r) > 1e-6]
target = (np.expm1(r) - r) / (r * r)
weight = (r * r) / np.abs(np.expm1(r))  # error of Q scaled to the relative error of expm1
V = np.stack([r**k for k in range(DEG + 1)], 1) * weight[:, None]
t = target * weight
n = DEG + 1
cost = np.zeros(n + 1)
cost[-1] = 1  # minimise e subject to |V c - t| <= e
A = np.vstack([np.hstack([V, -np.ones((len(r), 1))]), np.hstack([-V, -np.ones((len(r), 1))])])
b = np.concatenate([t, -t])
res = linprog(cost, A_ub=A, b_ub=b, bounds=[(None, None)] * n + [(0, None)], method="highs")
print(f"max relative error of expm1: {res.x[-1]:.3g}")
for k, c in enumerate(res.x[:n]):
    print(f"export const TQ{k} = {float(np.float32(c))!r};")
