"""Root finders: a safeguarded Newton method for decreasing functions (Q-profile bounds,
Paule-Mandel) and Brent's method in the form of R's ``uniroot()``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .control import EPS as _EPS


def solve_decreasing(
    fun: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    lo: np.ndarray,
    hi: np.ndarray,
    x0: np.ndarray | None = None,
    maxiter: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised safeguarded Newton for roots of non-increasing functions with a sign change.

    ``fun(idx, x)`` returns ``(f, f')`` for the problems ``idx`` at points ``x``; the caller
    guarantees ``f(lo) >= 0 >= f(hi)``. Newton steps that leave the current bracket are replaced
    by bisection, so every problem converges; iterations stop at machine precision (much tighter
    than the ``tol = 1e-13`` metafor's ``uniroot()`` calls were run with).

    Returns the roots and a boolean array telling which converged.
    """
    lo = np.array(lo, dtype=float, copy=True)
    hi = np.array(hi, dtype=float, copy=True)
    x = 0.5 * (lo + hi) if x0 is None else np.clip(np.array(x0, dtype=float, copy=True), lo, hi)
    n = x.size
    done = np.zeros(n, dtype=bool)
    active = np.arange(n)
    for _ in range(maxiter):
        if active.size == 0:
            break
        xa = x[active]
        f, df = fun(active, xa)
        zero = f == 0.0
        pos = f > 0.0
        # tighten the bracket with the sign of f (f decreasing: f > 0 means the root is to the right)
        lo[active[pos]] = xa[pos]
        hi[active[~pos]] = xa[~pos]
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = xa - f / df
        la, ha = lo[active], hi[active]
        bad = ~np.isfinite(xn) | (xn <= la) | (xn >= ha)
        xn[bad] = 0.5 * (la[bad] + ha[bad])
        width = ha - la
        step = np.abs(xn - xa)
        scale_ = np.maximum(np.abs(xn), np.finfo(float).tiny)
        conv = zero | (step <= 4.0 * _EPS * scale_) | (width <= 4.0 * _EPS * scale_)
        xn[zero] = xa[zero]
        x[active] = xn
        done[active[conv]] = True
        active = active[~conv]
    return x, done


def solve_decreasing_scalar(
    fun: Callable[[float], tuple[float, float]], lo: float, hi: float, x0: float, maxiter: int = 200
) -> tuple[float, bool]:
    """Scalar version of :func:`solve_decreasing` (same safeguarded Newton, same stopping rule)."""
    x = min(max(x0, lo), hi)
    for _ in range(maxiter):
        f, df = fun(x)
        if f == 0.0:
            return x, True
        if f > 0.0:
            lo = x
        else:
            hi = x
        xn = x - f / df if df != 0.0 else math.nan
        if not (lo < xn < hi):
            xn = 0.5 * (lo + hi)
        scale_ = max(abs(xn), np.finfo(float).tiny)
        if abs(xn - x) <= 4.0 * _EPS * scale_ or hi - lo <= 4.0 * _EPS * scale_:
            return xn, True
        x = xn
    return x, False


def mad(y: np.ndarray) -> float:
    """R's mad(): 1.4826 * median(|y - median(y)|)."""
    med = np.median(y)
    return 1.4826 * float(np.median(np.abs(y - med)))


def zeroin(
    f: Callable[[float], float], ax: float, bx: float, fa: float, fb: float, tol: float, maxiter: int
) -> tuple[float, bool]:
    """Brent's (1973) root finder in the form R's ``uniroot()`` runs it (``R_zeroin2``).

    Reproducing R's iterates (not just any root within ``tol``) matters where metafor calls
    ``uniroot()`` with its loose default tolerance (eps^0.25 ~ 1.2e-4): the reported estimate is
    then the point where Brent's method stops, not the exact root. Returns (root, converged).
    """
    a, b = ax, bx
    c, fc = a, fa
    if fa == 0.0:
        return a, True
    if fb == 0.0:
        return b, True
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b, True
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa  # secant
                pp = cb * t1
                qq = 1.0 - t1
            else:  # inverse quadratic interpolation
                qq = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                pp = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0))
                qq = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if pp > 0:
                qq = -qq
            else:
                pp = -pp
            if pp < (0.75 * cb * qq - abs(tol_act * qq) / 2.0) and pp < abs(prev_step * qq / 2.0):
                new_step = pp / qq
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0 and fc > 0) or (fb < 0 and fc < 0):
            c, fc = a, fa
    return b, False
