#!/usr/bin/env python
"""Fits the rational approximation of erf used by crates/lynx/src/model/nn.rs (`gelu_erf`):
erf(x) ≈ x · P(x²) / Q(x²) on |x| <= 3.92 (beyond it erf rounds to ±1 in f32), P of degree 6,
Q of degree 5 with Q(0) = 1. Linearised least squares P - (erf(x)/x)·Q = 0 on Chebyshev nodes,
reweighted by 1/Q and then by the running error (Lawson) towards the minimax fit. Prints the
coefficients (lowest degree first) and the largest error of the f32 evaluation.

Run: /work/pyenv/bin/python tools/fit_erf.py
"""

from math import erf

import numpy as np

X = 3.92


def fit(dp=6, dq=5, iters=60, n=6000):
    x = np.cos(np.linspace(0, np.pi, n)) * X / 2 + X / 2
    x = np.unique(x[x > 1e-4])
    f = np.array([erf(v) for v in x]) / x
    t = x * x / (X * X)  # scaled so the fit is well conditioned
    w = np.ones_like(x)
    lw = np.ones_like(x)
    for it in range(iters):
        a = np.hstack([np.vander(t, dp + 1, increasing=True),
                       -(f[:, None] * np.vander(t, dq + 1, increasing=True)[:, 1:])])
        sol, *_ = np.linalg.lstsq(a * (w * lw)[:, None], f * w * lw, rcond=None)
        p, q = sol[: dp + 1], np.concatenate([[1.0], sol[dp + 1:]])
        big_q = np.polyval(q[::-1], t)
        err = np.abs(x * (np.polyval(p[::-1], t) / big_q - f))
        w = x / np.abs(big_q)
        if it > 10:
            lw = lw * (err / err.max() + 1e-3)
            lw /= lw.sum() / len(lw)
    p = p / np.array([X ** (2 * k) for k in range(dp + 1)])
    q = q / np.array([X ** (2 * k) for k in range(dq + 1)])
    return p, q


def eval_f32(p, q, xs):
    xc = np.clip(xs.astype(np.float32), -X, X).astype(np.float32)
    t = (xc * xc).astype(np.float32)
    num, den = np.float32(p[-1]), np.float32(q[-1])
    for c in p[-2::-1]:
        num = (num * t + np.float32(c)).astype(np.float32)
    for c in q[-2::-1]:
        den = (den * t + np.float32(c)).astype(np.float32)
    return (xc * num / den).astype(np.float32)


def main():
    p, q = fit()
    print("P:", ", ".join(f"{c:.9e}" for c in p))
    print("Q:", ", ".join(f"{c:.9e}" for c in q))
    xs = np.linspace(-6, 6, 600001).astype(np.float32)
    ref = np.array([erf(float(v)) for v in xs])
    print("max |error| of the f32 evaluation on [-6, 6]:", np.abs(eval_f32(p, q, xs) - ref).max())


if __name__ == "__main__":
    main()
