"""Batched heterogeneity (tau²) estimation and weighted least squares for the normal-normal model.

This is the numerical core behind :func:`workers.metaanalysis.rma.rma` and the sensitivity
analyses. It implements the estimators of metafor's ``rma.uni()`` (Viechtbauer 2010, J Stat Softw
36(3); metafor 3.8-1 ``R/rma.uni.r``) for a *family* of subsets of the same studies at once:

* ``full``  -- the one model on all k studies (``rma()`` itself);
* ``loo``   -- the k leave-one-out models (``leave1out()``, ``influence()``);
* ``cumul`` -- the k cumulative models on studies 1..i (``cumul()``).

Every quantity metafor computes from the k x k matrix ``P = W - W X (X'WX)^-1 X'W`` is rewritten
here with weighted sums ``sum_j c_j G_j`` of the per-study products ``G_j = (x_j x_j', x_j y_j,
y_j^2)``, so a fit costs O(k p^2) per iteration and never forms a k x k matrix. For a family of
subsets, sums with fixed weights (1/v, 1, v, ...) come from prefix/suffix cumulative sums in
O(k). Sums with tau²-dependent weights are evaluated in cache-sized row chunks of a (subset x
study) weight matrix whose excluded entries are zeroed, so every subset's sum runs over exactly
its own studies; for large leave-one-out families an exact Taylor series in tau² around a common
centre gives the same sums in O(k) per subset (:meth:`Family._loo_series`, with the masked sums
as fallback wherever the series or the subtraction of the study's own term could lose digits).
Single models use lighter scalar (:class:`IntOnly`) and p x p (:class:`GenOnly`) versions of the
same formulas.

Iteration follows metafor (Fisher scoring from max(0, HE), step halving at tau² = 0, the check
that tau² = 0 does not have a larger likelihood). Under a tight threshold the iterations take
Newton steps where those agree with the Fisher step (quadratic instead of linear convergence):
the converged value is the same root up to metafor's threshold. Under metafor's loose default
threshold (1e-5) the stopping point depends on the path, so metafor's path is followed exactly.

Numerically, y is centred at its mean (as metafor's ``Ymc``) and the moderator columns are
centred and scaled; because the intercept is always in the model this is a reparametrisation
that leaves P unchanged, and it keeps X'WX well conditioned. Coefficients and their covariance
are mapped back to the original parametrisation at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable

import numpy as np
from scipy import special

METHODS: tuple[str, ...] = ("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
TESTS: tuple[str, ...] = ("z", "knha", "t")

_EPS = float(np.finfo(float).eps)
# Elements of one chunk of the (subset x study) weight matrix: small enough for the few arrays of
# a chunk to stay in cache (measured fastest at k = 10^4).
_CHUNK_ELEMENTS = 1 << 14
# Leave-one-out families with at least this many (subset x study) elements use the series.
_SERIES_MIN_ELEMENTS = 1 << 16


@dataclasses.dataclass(frozen=True)
class Control:
    """Iteration settings (metafor's ``control`` list of ``rma.uni``).

    The defaults are the tight settings the reference results were computed with
    (``threshold = tol = 1e-13``, ``maxiter = 10000``), not metafor's looser defaults.
    """

    threshold: float = 1e-13
    tol: float = 1e-13
    maxiter: int = 10000


DEFAULT_CONTROL = Control()

#: metafor's own defaults (``threshold = 1e-5``, ``tol = .Machine$double.eps^0.25``,
#: ``maxiter = 100``): used where metafor refits without passing ``control`` on (trimfill).
METAFOR_DEFAULTS = Control(threshold=1e-5, tol=float(np.finfo(float).eps) ** 0.25, maxiter=100)

#: Below this convergence threshold the iterations take Newton steps where they are
#: safe (see :func:`_newton_ok`): the converged value is the same root, reached in a few
#: iterations where Fisher scoring converges linearly (30+ iterations to 1e-13 are common). With
#: metafor's default threshold (1e-5) the Fisher path itself decides where iteration stops, so it
#: is followed exactly.
NEWTON_BELOW_THRESHOLD = 1e-8


def alpha_from_level(level: float) -> float:
    """Convert a confidence level to alpha exactly as metafor's ``.level()`` does.

    ``level >= 1`` is a percentage (95 -> 0.05); ``0.5 < level < 1`` a proportion; ``level == 0``
    gives alpha 1.
    """
    if level == 0:
        return 1.0
    if level >= 1:
        return (100.0 - level) / 100.0
    if level > 0.5:
        return 1.0 - level
    return float(level)


# ----------------------------------------------------------------------------------------------
# data and subset families
# ----------------------------------------------------------------------------------------------


class Problem:
    """The studies of one model: centred outcomes, sampling variances and the design.

    Parameters
    ----------
    yi, vi : array_like
        Outcomes and (positive) sampling variances of the k studies in the model.
    X : ndarray or None
        Full design matrix *including* the intercept column, or None for intercept-only.
    """

    def __init__(self, yi: np.ndarray, vi: np.ndarray, X: np.ndarray | None = None) -> None:
        y = np.asarray(yi, dtype=float)
        v = np.asarray(vi, dtype=float)
        k = y.size
        self.k = k
        self.y = y
        self.v = v
        self.ybar = float(y.mean())
        yc = y - self.ybar
        self.yc = yc
        if X is None or X.shape[1] == 1:
            self.p = 1
            self.X = np.ones((k, 1)) if X is None else np.asarray(X, dtype=float)
            self.Xc = np.ones((k, 1))
            G = np.empty((k, 3))
            G[:, 0] = 1.0
            G[:, 1] = yc
            G[:, 2] = yc * yc
            self.center = np.zeros(0)
            self.scale = np.ones(0)
        else:
            X = np.asarray(X, dtype=float)
            p = X.shape[1]
            self.p = p
            self.X = X
            mods = X[:, 1:]
            center = mods.mean(axis=0)
            scale = mods.std(axis=0)
            scale[scale == 0] = 1.0  # a constant column is caught as singular before we get here
            Xc = np.empty_like(X)
            Xc[:, 0] = 1.0
            Xc[:, 1:] = (mods - center) / scale
            self.Xc = Xc
            self.center = center
            self.scale = scale
            G = np.concatenate(
                [(Xc[:, :, None] * Xc[:, None, :]).reshape(k, p * p), Xc * yc[:, None], (yc * yc)[:, None]],
                axis=1,
            )
        self.G = np.ascontiguousarray(G)
        self.q = self.G.shape[1]

    # -- mapping back to the original parametrisation -------------------------------------------
    def beta_back(self, beta_c: np.ndarray) -> np.ndarray:
        """Coefficients (n, p) on the centred/scaled scale -> original scale (adds back mean(y))."""
        beta = np.array(beta_c, dtype=float, copy=True)
        beta[:, 0] += self.ybar
        if self.p > 1:
            beta[:, 1:] = beta[:, 1:] / self.scale
            beta[:, 0] -= beta[:, 1:] @ self.center
        return beta

    def vb_back(self, vb_c: np.ndarray) -> np.ndarray:
        """Covariance matrices (n, p, p) on the centred/scaled scale -> original scale."""
        if self.p == 1:
            return vb_c
        L = np.zeros((self.p, self.p))
        L[0, 0] = 1.0
        L[0, 1:] = -self.center / self.scale
        L[1:, 1:] = np.diag(1.0 / self.scale)
        return L @ vb_c @ L.T


class Family:
    """A family of subsets of the studies of a :class:`Problem`.

    ``kind`` is ``"full"`` (one subset: all studies), ``"loo"`` (subset i leaves study i out) or
    ``"cumul"`` (subset i holds studies 0..i).
    """

    def __init__(self, problem: Problem, kind: str) -> None:
        if kind not in ("full", "loo", "cumul"):
            raise ValueError(f"unknown subset family {kind!r}")
        self.pr = problem
        self.kind = kind
        k = problem.k
        if kind == "full":
            self.B = 1
            self.kb = np.array([float(k)])
        elif kind == "loo":
            self.B = k
            self.kb = np.full(k, float(k - 1))
        else:
            self.B = k
            self.kb = np.arange(1, k + 1, dtype=float)
        self._fixed_cache: dict[str, np.ndarray] = {}
        self._tri_full: np.ndarray | None = None

    def inestimable(self) -> np.ndarray:
        """Subsets whose design is singular (a moderator no longer estimable without a study).

        metafor's refit then drops the coefficient and influence()/leave1out() report NA; the
        check is on the unweighted X'X of each subset, scaled to a correlation-type matrix.
        """
        p = self.pr.p
        if p == 1:
            return np.zeros(self.B, dtype=bool)
        XX = self.fixed("one", None)[:, : p * p].reshape(-1, p, p)
        d = np.sqrt(np.maximum(np.einsum("nii->ni", XX), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            R = XX / (d[:, :, None] * d[:, None, :])
        bad = np.any(d == 0, axis=1) | ~np.all(np.isfinite(R), axis=(1, 2))
        R[bad] = np.eye(p)
        return bad | (np.linalg.eigvalsh(R).min(axis=1) <= 1e-10)

    def fixed(self, key: str, c: np.ndarray | None) -> np.ndarray:
        """Sums of ``c_j G_j`` over each subset, shape (B, q); ``c`` is a fixed weight vector."""
        hit = self._fixed_cache.get(key)
        if hit is not None:
            return hit
        G = self.pr.G
        M = G if c is None else G * c[:, None]
        if self.kind == "full":
            out = M.sum(axis=0, keepdims=True)
        elif self.kind == "cumul":
            out = np.cumsum(M, axis=0)
        else:
            # sum over j != i as (sum over j < i) + (sum over j > i): no subtraction of own term
            q = M.shape[1]
            pre = np.zeros_like(M)
            np.cumsum(M[:-1], axis=0, out=pre[1:])
            suf = np.zeros_like(M)
            if M.shape[0] > 1:
                suf[:-1] = np.cumsum(M[:0:-1], axis=0)[::-1]
            out = pre + suf
            out.shape = (self.B, q)
        self._fixed_cache[key] = out
        return out

    def var(self, idx: np.ndarray, t: np.ndarray, powers: tuple[int, ...]) -> list[np.ndarray]:
        """Sums of ``w_j^n G_j`` with ``w_j = 1/(v_j + t_i)`` over subset i, for i in ``idx``.

        Returns one (len(idx), q) array per power in ``powers``.
        """
        pr = self.pr
        n = idx.size
        outs = [np.empty((n, pr.q)) for _ in powers]
        if n == 0:
            return outs
        if self.kind == "loo" and n * pr.k >= _SERIES_MIN_ELEMENTS:
            exact = self._loo_series(idx, t, powers, outs)
            if exact.size == 0:
                return outs
            # rows the series cannot serve: exact masked sums below, written back in place
            sub = self._exact(idx[exact], t[exact], powers)
            for o, so in zip(outs, sub, strict=True):
                o[exact] = so
            return outs
        return self._exact(idx, t, powers)

    def _loo_series(
        self, idx: np.ndarray, t: np.ndarray, powers: tuple[int, ...], outs: list[np.ndarray]
    ) -> np.ndarray:
        """Leave-one-out sums in O(k) per subset through a Taylor series in tau².

        For subset i, ``sum_{j != i} (v_j + t_i)^-n G_j = sum_m (-1)^m C(n+m-1, m) d_i^m T_{n+m}
        - (v_i + t_i)^-n G_i`` with ``d_i = t_i - c`` and ``T_p = sum_j (v_j + c)^-p G_j`` over all
        studies. The leave-one-out tau² values are all close to one centre c, so the series
        converges geometrically with ratio |d_i|/(min v + c); enough terms are taken for the
        truncation error to stay below 1e-17 relative. The study's own term is subtracted exactly;
        rows where it dominates the sum (subtraction would lose digits) or where the series would
        converge slowly are returned for the exact masked computation.
        """
        pr = self.pr
        v, G = pr.v, pr.G
        c = 0.5 * (float(t.min()) + float(t.max()))
        d = t - c
        vmin = float(v.min())
        rho = np.abs(d) / (vmin + c)
        ok = rho <= 0.2
        rho_max = float(rho[ok].max()) if np.any(ok) else 0.0
        nmax = max(powers)
        M = 0
        while M < 40 and math.comb(nmax + M, M + 1) * rho_max ** (M + 1) > 1e-17:
            M += 1
        wc = 1.0 / (v + c)
        P = nmax + M
        Wp = np.empty((P, pr.k))
        Wp[0] = wc
        for j in range(1, P):
            np.multiply(Wp[j - 1], wc, out=Wp[j])
        T = Wp @ G  # T[p - 1] = sum_j w_j^p G_j
        own_w = 1.0 / (v[idx] + t)
        with np.errstate(over="ignore", invalid="ignore"):  # rows with rho > 0.2 are redone below
            dm = d[:, None] ** np.arange(M + 1)[None, :]
            for o, nn in zip(outs, powers, strict=True):
                coef = np.array([(-1) ** m * math.comb(nn + m - 1, m) for m in range(M + 1)], dtype=float)
                np.matmul(dm * coef, T[nn - 1 : nn + M], out=o)
                o -= (own_w**nn)[:, None] * G[idx]
            # the own term's share of sum w^n for the largest power: above 0.9 the subtraction
            # loses more than one digit, so such rows are recomputed exactly
            own_n = own_w**nmax
            share = own_n / (outs[powers.index(nmax)][:, 0] + own_n)
            ok &= share <= 0.9
        return np.flatnonzero(~ok)

    def _exact(self, idx: np.ndarray, t: np.ndarray, powers: tuple[int, ...]) -> list[np.ndarray]:
        """Sums by masked (subset x study) weight matrices, in cache-sized row chunks."""
        pr = self.pr
        v, G = pr.v, pr.G
        n = idx.size
        outs = [np.empty((n, pr.q)) for _ in powers]
        if n == 0:
            return outs
        k = pr.k
        rows = max(1, _CHUNK_ELEMENTS // max(k, 1))
        for s in range(0, n, rows):
            e = min(n, s + rows)
            ii = idx[s:e]
            # the cumulative subsets of a chunk only reach up to its last study
            cols = k if self.kind != "cumul" else int(ii[-1]) + 1
            W = np.add(v[None, :cols], t[s:e, None])
            np.reciprocal(W, out=W)
            if self.kind == "loo":
                W[np.arange(e - s), ii] = 0.0
            elif self.kind == "cumul":
                # idx is increasing: zero the studies after each subset's last one
                np.multiply(W, self._tri(ii, cols), out=W)
            self._powers_into(W, G[:cols], powers, outs, s, e)
        return outs

    def _tri(self, ii: np.ndarray, cols: int) -> np.ndarray:
        """0/1 rows of the lower-triangular inclusion mask of the cumulative subsets ``ii``."""
        k = self.pr.k
        if k <= 1024:  # small: build the whole k x k mask once (at most 8 MB)
            if self._tri_full is None:
                self._tri_full = np.tri(k)
            return self._tri_full[ii, :cols]
        return (np.arange(cols)[None, :] <= ii[:, None]).astype(float)

    @staticmethod
    def _powers_into(
        W: np.ndarray, G: np.ndarray, powers: tuple[int, ...], outs: list[np.ndarray], s: int, e: int
    ) -> None:
        cur = None
        cur_pow = 0
        for j, pw in enumerate(powers):
            if cur is None:
                cur = W if pw == 1 else W**pw
            else:
                while cur_pow < pw:
                    cur = cur * W
                    cur_pow += 1
            cur_pow = pw
            np.matmul(cur, G, out=outs[j][s:e])


# ----------------------------------------------------------------------------------------------
# algebra on sums
# ----------------------------------------------------------------------------------------------


class Sums:
    """Unpacked weighted sums ``(X'CX, X'Cy, y'Cy)`` for n subsets."""

    __slots__ = ("XX", "Xy", "p", "sw", "yy")

    def __init__(self, S: np.ndarray, p: int) -> None:
        n = S.shape[0]
        pp = p * p
        self.p = p
        self.XX = S[:, :pp].reshape(n, p, p)
        self.Xy = S[:, pp : pp + p]
        self.yy = S[:, pp + p]
        self.sw = S[:, 0]


def _inv(XX: np.ndarray) -> np.ndarray:
    if XX.shape[1] == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 / XX
    try:
        return np.linalg.inv(XX)
    except np.linalg.LinAlgError:
        out = np.full_like(XX, np.nan)
        for i in range(XX.shape[0]):
            with contextlib.suppress(np.linalg.LinAlgError):
                out[i] = np.linalg.inv(XX[i])
        return out


def _tr(A: np.ndarray, M: np.ndarray) -> np.ndarray:
    """tr(A M) for stacks of symmetric matrices."""
    if A.shape[1] == 1:
        return A[:, 0, 0] * M[:, 0, 0]
    return np.einsum("nij,nji->n", A, M)


def _quad(b: np.ndarray, M: np.ndarray) -> np.ndarray:
    """b' M b for stacks."""
    if b.shape[1] == 1:
        return b[:, 0] * b[:, 0] * M[:, 0, 0]
    return np.einsum("ni,nij,nj->n", b, M, b)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two (n, p) stacks."""
    if a.shape[1] == 1:
        return a[:, 0] * b[:, 0]
    return np.einsum("ni,ni->n", a, b)


def _matvec(M: np.ndarray, b: np.ndarray) -> np.ndarray:
    """M b for a stack of matrices (n, p, p) and vectors (n, p)."""
    if M.shape[1] == 1:
        return M[:, :, 0] * b
    return np.einsum("nij,nj->ni", M, b)


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    if A.shape[1] == 1:
        return A[:, 0, :] * b
    return np.einsum("nij,nj->ni", A, b)


def wls(S1: Sums) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares from sums: returns (A = (X'WX)^-1, beta, y'Py = RSS)."""
    A = _inv(S1.XX)
    beta = _solve(A, S1.Xy)
    rss = S1.yy - _dot(beta, S1.Xy)
    return A, beta, rss


def _resid_quad(beta: np.ndarray, S: Sums) -> np.ndarray:
    """sum_j c_j (y_j - x_j'beta)^2 from the sums of weight c."""
    return S.yy - 2.0 * _dot(beta, S.Xy) + _quad(beta, S.XX)


# ----------------------------------------------------------------------------------------------
# root finding on decreasing functions (Q-profile, Paule-Mandel)
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# the estimators
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Tau2Result:
    """tau² for each subset with bookkeeping for the single-fit standard error."""

    tau2: np.ndarray
    ok: np.ndarray
    reason: list[str | None]
    tau2_0: np.ndarray | None = None  # SJ's starting value


def _he(fam: Family) -> np.ndarray:
    """Hedges' (HE) estimator, untruncated: (RSS_OLS - tr(PV)) / (k - p)."""
    pr = fam.pr
    p = pr.p
    S0 = Sums(fam.fixed("one", None), p)
    Sv = Sums(fam.fixed("v", pr.v), p)
    A0, _, rss = wls(S0)
    trPV = Sv.sw - _tr(A0, Sv.XX)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rss - trPV) / (fam.kb - p)


def _fe_parts(fam: Family) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(QE, tr(P_FE), sum(1/v)) with the inverse-variance (equal-effects) weights."""
    pr = fam.pr
    S1 = Sums(fam.fixed("w1", 1.0 / pr.v), pr.p)
    S2 = Sums(fam.fixed("w2", 1.0 / pr.v**2), pr.p)
    A, _, rss = wls(S1)
    trP = S1.sw - _tr(A, S2.XX)
    return rss, trP, S1.sw


def estimate_tau2(
    fam: Family,
    method: str,
    ctl: Control = DEFAULT_CONTROL,
    start: np.ndarray | None = None,
    newton: bool = False,
) -> Tau2Result:
    """tau² for every subset of ``fam`` by metafor's estimator ``method``.

    Subsets with a single study get tau² = 0 (metafor's ``k = 1`` handling). ``start`` replaces
    metafor's starting value (max(0, HE)) of the iterative ML/REML/EB estimators and ``newton``
    switches their Fisher scoring to a Newton/Fisher hybrid: both only change the path, not the
    root, and are used for leave-one-out families started at the full-data estimate.
    """
    pr = fam.pr
    p = pr.p
    kb = fam.kb
    B = fam.B
    reason: list[str | None] = [None] * B
    ok = np.ones(B, dtype=bool)
    tau2_0 = None
    one = kb == 1
    # metafor refuses a model with more parameters than studies (p + 1 with tau², p for EE; an
    # intercept-only model with one study is the exception): such subsets are left out
    need = p if method == "EE" else p + 1
    too_few = (kb < need) & ~(one & (p == 1))
    singular = fam.inestimable() & ~too_few
    skip = too_few | singular
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "EE":
            tau2 = np.zeros(B)
        elif method in ("DL", "HS"):
            qe, trP, sw = _fe_parts(fam)
            tau2 = (qe - (kb - p)) / trP if method == "DL" else (qe - kb) / sw
            tau2 = np.maximum(0.0, tau2)
        elif method == "HE":
            tau2 = np.maximum(0.0, _he(fam))
        elif method == "SJ":
            S0 = Sums(fam.fixed("one", None), p)
            # metafor: var(ymci) * (k-1)/k, the plain (not model-based) variance of y
            t0 = (S0.yy - S0.Xy[:, 0] ** 2 / kb) / kb
            t0 = np.maximum(t0, 0.0)
            (S1raw,) = fam.var(np.arange(B), t0, (1,))
            _, _, rss = wls(Sums(S1raw, p))
            tau2 = t0 * rss / (kb - p)
            tau2_0 = t0
        elif method in ("ML", "REML", "EB"):
            tau2, ok, reason, _ = _fisher_scoring(fam, method, ctl, start, newton, skip)
        elif method == "PM":
            if fam.kind == "full":
                tau2, ok, reason = _paule_mandel_uniroot(fam, ctl)
            else:
                tau2, ok, reason = _paule_mandel(fam, skip)
        else:
            raise ValueError(f"unknown method {method!r}")
    tau2 = np.where(one & ok, 0.0, tau2)
    if np.any(one):
        for i in np.flatnonzero(one & ~too_few):
            reason[i] = None
            ok[i] = True
    if np.any(skip):
        tau2 = np.where(skip, np.nan, tau2)
        ok = ok & ~skip
        for i in np.flatnonzero(too_few):
            reason[i] = f"{int(kb[i])} studies cannot estimate {need} parameters"
        for i in np.flatnonzero(singular):
            reason[i] = "a coefficient is not estimable in this subset (singular design)"
    return Tau2Result(tau2=tau2, ok=ok, reason=reason, tau2_0=tau2_0)


def _score_parts(fam: Family, idx: np.ndarray, t: np.ndarray, method: str, newton: bool):
    """Score, expected information and (optionally) the score's derivative at t."""
    p = fam.pr.p
    kb = fam.kb[idx]
    if method == "EB":
        powers: tuple[int, ...] = (1, 2) if newton else (1,)
    elif method == "ML":
        powers = (1, 2, 3) if newton else (1, 2)
    else:
        powers = (1, 2, 3)
    raw = fam.var(idx, t, powers)
    if p == 1:
        return _score_parts_1(raw, kb, method, newton)
    sums = [Sums(S, p) for S in raw]
    S1 = sums[0]
    A, beta, ypy = wls(S1)
    if method == "EB":
        score = ypy * kb / (kb - p) - kb
        info = S1.sw
        dscore = -_resid_quad(beta, sums[1]) * kb / (kb - p) if newton else None
        return score, info, dscore
    S2 = sums[1]
    yppy = _resid_quad(beta, S2)
    if method == "ML":
        score = yppy - S1.sw
        info = S2.sw
        tr_pp = None
    else:
        S3 = sums[2]
        trP = S1.sw - _tr(A, S2.XX)
        AX2 = A @ S2.XX if p > 1 else A * S2.XX
        tr_pp = (
            S2.sw - 2.0 * _tr(A, S3.XX) + (np.einsum("nij,nji->n", AX2, AX2) if p > 1 else AX2[:, 0, 0] ** 2)
        )
        score = yppy - trP
        info = tr_pp
    dscore = None
    if newton:
        S3 = sums[2]
        u = S2.Xy - _matvec(S2.XX, beta)  # X'W^2 r
        ypppy = _resid_quad(beta, S3) - _dot(u, _solve(A, u))
        dscore = -2.0 * ypppy + (S2.sw if method == "ML" else tr_pp)
    return score, info, dscore


def _score_parts_1(raw: list[np.ndarray], kb: np.ndarray, method: str, newton: bool):
    """:func:`_score_parts` for intercept-only models, on the columns (sum w^j, sum w^j y,
    sum w^j y^2) directly (same formulas with p = 1)."""
    S1 = raw[0]
    sw = S1[:, 0]
    mu = S1[:, 1] / sw
    if method == "EB":
        ypy = S1[:, 2] - mu * S1[:, 1]
        score = ypy * kb / (kb - 1) - kb
        dscore = None
        if newton:
            S2 = raw[1]
            dscore = -(S2[:, 2] - 2.0 * mu * S2[:, 1] + mu * mu * S2[:, 0]) * kb / (kb - 1)
        return score, sw, dscore
    S2 = raw[1]
    s2 = S2[:, 0]
    yppy = S2[:, 2] - 2.0 * mu * S2[:, 1] + mu * mu * s2
    if method == "ML":
        score, info = yppy - sw, s2
    else:
        r = s2 / sw
        info = s2 - 2.0 * raw[2][:, 0] / sw + r * r
        score = yppy - (sw - r)
    dscore = None
    if newton:
        S3 = raw[2]
        u = S2[:, 1] - s2 * mu
        ypppy = S3[:, 2] - 2.0 * mu * S3[:, 1] + mu * mu * S3[:, 0] - u * u / sw
        dscore = -2.0 * ypppy + info
    return score, info, dscore


def _fisher_scoring(
    fam: Family,
    method: str,
    ctl: Control,
    start: np.ndarray | None,
    newton: bool,
    skip: np.ndarray | None = None,
):
    """metafor's Fisher scoring for ML/REML/EB with step halving at tau2.min = 0.

    Convergence is declared when the change in tau² falls below ``ctl.threshold`` (or a few ulps of
    tau², below which floating point cannot go; metafor would iterate to ``maxiter`` there).
    """
    B = fam.B
    kb = fam.kb
    reason: list[str | None] = [None] * B
    ok = np.ones(B, dtype=bool)
    if ctl.threshold >= NEWTON_BELOW_THRESHOLD:
        # loose threshold: where iteration stops depends on the path, so follow metafor's exactly
        start, newton = None, False
    if start is None:
        t = np.maximum(0.0, _he(fam))
        t[~np.isfinite(t)] = 0.0
    else:
        t = np.array(start, dtype=float, copy=True)
    t[kb == 1] = 0.0
    active = np.flatnonzero((kb > 1) if skip is None else (kb > 1) & ~skip)
    it = 0
    while active.size:
        it += 1
        ta = t[active]
        score, info, dscore = _score_parts(fam, active, ta, method, newton)
        adj = score / info
        if newton and dscore is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                nadj = -score / dscore
                ratio = nadj / adj
            use = (dscore < 0) & np.isfinite(nadj) & (ratio > 0.1) & (ratio < 10.0)
            adj = np.where(use, nadj, adj)
        adj[np.isnan(adj)] = 0.0  # as metafor (a saturated model gives NaN)
        diverged = np.isinf(adj)
        if np.any(diverged):
            # an infinite step (no information left): metafor would halve it forever
            for i in active[diverged]:
                ok[i] = False
                reason[i] = "Fisher scoring diverged (infinite step)"
            t[active[diverged]] = np.nan
            keep = ~diverged
            active, ta, adj = active[keep], ta[keep], adj[keep]
        # step halving so that tau² stays >= tau2.min = 0; from tau² = 0 with a negative step,
        # halving only ends when the step underflows, so that case is short-cut to a zero step
        adj[(ta == 0.0) & (adj < 0.0)] = 0.0
        neg = ta + adj < 0.0
        if np.any(neg):
            # metafor halves the step until tau² + step >= 0; jump to the number of halvings
            # (scaling by powers of two is exact, so this is the same step as repeated halving)
            r = np.flatnonzero(neg)
            with np.errstate(divide="ignore"):
                h = np.maximum(1, np.ceil(np.log2(-adj[r] / ta[r])) - 1).astype(int)
            step = np.ldexp(adj[r], -h)
            short = ta[r] + step < 0.0
            while np.any(short):
                h[short] += 1
                step[short] = np.ldexp(adj[r][short], -h[short])
                short = ta[r] + step < 0.0
            adj[r] = step
        tn = ta + adj
        change = np.abs(tn - ta)
        t[active] = tn
        conv = change <= np.maximum(ctl.threshold, 8.0 * _EPS * tn)
        active = active[~conv]
        if 0 < active.size <= _HANDOFF_ROWS and it < ctl.maxiter:
            # a few slow subsets left (typically creeping towards tau² = 0 by step halving, one
            # halving per iteration): finish them one by one on the cheaper single-model path,
            # continuing the same iteration
            for i in active:
                ti, oki, why = _finish_one(fam, int(i), method, ctl, float(t[i]), it)
                t[i] = ti
                if not oki:
                    ok[i] = False
                    reason[i] = why
            active = active[:0]
            break
        if it >= ctl.maxiter and active.size:
            for i in active:
                ok[i] = False
                reason[i] = f"Fisher scoring did not converge in {ctl.maxiter} iterations"
            t[active] = np.nan
            break
    if method in ("ML", "REML"):
        _ll0check(fam, t, ok, method, ctl)
    return t, ok, reason, it


#: Below this many unfinished subsets the batched iteration hands them to the single-model code.
_HANDOFF_ROWS = 4


def _finish_one(
    fam: Family, i: int, method: str, ctl: Control, t: float, it: int
) -> tuple[float, bool, str | None]:
    """Continue subset i's iteration from tau² = t after ``it`` iterations, on its own data."""
    pr = fam.pr
    if fam.kind == "full":
        keep = np.arange(pr.k)
    elif fam.kind == "loo":
        keep = np.delete(np.arange(pr.k), i)
    else:
        keep = np.arange(i + 1)
    if pr.p == 1:
        t1, ok, why = _fisher1(IntOnly(pr.y[keep], pr.v[keep]), method, ctl, start=t, it=it, ll0=False)
    else:
        sub = Problem(pr.y[keep], pr.v[keep], pr.X[keep])
        t1, ok, why = _fisher_gen(GenOnly(sub), method, ctl, t, it=it, ll0=False)
    return (t1 if ok else math.nan), ok, why


def _loglik(fam: Family, idx: np.ndarray, t: np.ndarray, method: str) -> np.ndarray:
    """ML or REML log-likelihood (without the constant log|X'X| term) at tau² = t."""
    pr = fam.pr
    p = pr.p
    kb = fam.kb[idx]
    (S,) = fam.var(idx, t, (1,))
    S1 = Sums(S, p)
    _, _, rss = wls(S1)
    # sum(log(v + t)) over each subset, through the same masked machinery on a log-weight column
    logsum = _masked_logsum(fam, idx, t)
    if method == "ML":
        return -0.5 * kb * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * rss
    if p == 1:
        logdet = np.log(S1.XX[:, 0, 0])
    else:
        logdet = np.linalg.slogdet(S1.XX)[1] + 2.0 * float(np.sum(np.log(pr.scale)))
    return -0.5 * (kb - p) * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * logdet - 0.5 * rss


def _masked_logsum(fam: Family, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
    v = fam.pr.v
    out = np.empty(idx.size)
    for j, (i, ti) in enumerate(zip(idx, t, strict=True)):
        lv = np.log(v + ti)
        if fam.kind == "full":
            out[j] = lv.sum()
        elif fam.kind == "loo":
            out[j] = lv.sum() - lv[i]
        else:
            out[j] = lv[: i + 1].sum()
    return out


def _ll0check(fam: Family, t: np.ndarray, ok: np.ndarray, method: str, ctl: Control) -> None:
    """metafor's check whether the likelihood at tau² = 0 beats the converged value.

    Only subsets whose score is negative at tau² = 0 can have the boundary win (otherwise the
    likelihood increases away from 0 towards the root found), so only those are evaluated.
    """
    pr = fam.pr
    cand = np.flatnonzero(ok & (t > ctl.threshold) & (fam.kb > 1))
    if cand.size == 0:
        return
    if fam.kind != "full":
        # score at 0 uses the fixed weights 1/v: cheap prefix/suffix sums
        p = pr.p
        S1 = Sums(fam.fixed("w1", 1.0 / pr.v), p)
        S2 = Sums(fam.fixed("w2", 1.0 / pr.v**2), p)
        A, beta, _ = wls(S1)
        yppy = _resid_quad(beta, S2)
        score0 = yppy - S1.sw if method == "ML" else yppy - (S1.sw - _tr(A, S2.XX))
        cand = cand[score0[cand] < 0]
        if cand.size == 0:
            return
    ll0 = _loglik(fam, cand, np.zeros(cand.size), method)
    ll1 = _loglik(fam, cand, t[cand], method)
    flip = ll0 - ll1 > ctl.tol
    t[cand[flip]] = 0.0


def _mad(y: np.ndarray) -> float:
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


def _paule_mandel_uniroot(fam: Family, ctl: Control):
    """Paule-Mandel for a single model exactly as metafor: ``uniroot()`` of Q(tau²) - (k - p) on
    [0, tau2.max] with tau2.max = max(100, 10 mad(y)^2) and tolerance ``ctl.tol``."""
    pr = fam.pr
    k, p = pr.k, pr.p
    target = k - p
    reason: list[str | None] = [None]
    if k == 1:
        return np.zeros(1), np.ones(1, dtype=bool), reason

    def q(t: float) -> float:
        (S,) = fam.var(np.zeros(1, dtype=int), np.array([t]), (1,))
        return float(wls(Sums(S, p))[2][0]) - target

    f0 = q(0.0)
    if f0 < 0:
        return np.zeros(1), np.ones(1, dtype=bool), reason
    tmax = max(100.0, 10.0 * _mad(pr.y) ** 2)
    fmax = q(tmax)
    if fmax > 0:
        reason[0] = (
            f"the Paule-Mandel estimate lies above tau2.max = {tmax:.6g} "
            "(metafor: \"Value of 'tau2.max' too low\")"
        )
        return np.full(1, np.nan), np.zeros(1, dtype=bool), reason
    root, done = zeroin(q, 0.0, tmax, f0, fmax, ctl.tol, ctl.maxiter)
    if not done:
        reason[0] = "uniroot() for the Paule-Mandel estimator did not converge"
        return np.full(1, np.nan), np.zeros(1, dtype=bool), reason
    return np.array([root]), np.ones(1, dtype=bool), reason


def _paule_mandel(fam: Family, skip: np.ndarray | None = None):
    """Paule-Mandel: the tau² where the generalised Q equals k - p (metafor: uniroot on
    [tau2.min, tau2.max], tau2.max = max(100, 10 mad(y)^2); 0 when Q(0) < k - p)."""
    pr = fam.pr
    p = pr.p
    B = fam.B
    kb = fam.kb
    reason: list[str | None] = [None] * B
    ok = np.ones(B, dtype=bool)
    target = kb - p
    qe, _, _ = _fe_parts(fam)
    tau2 = np.zeros(B)
    need = np.flatnonzero((qe >= target) & (kb > 1) & (True if skip is None else ~skip))
    if need.size == 0:
        return tau2, ok, reason

    def fun(ii: np.ndarray, x: np.ndarray):
        rows = need[ii]
        S1r, S2r = fam.var(rows, x, (1, 2))
        S1, S2 = Sums(S1r, p), Sums(S2r, p)
        _, beta, q = wls(S1)
        return q - target[rows], -_resid_quad(beta, S2)

    # bracket: Q is non-increasing in tau²; grow the upper end until Q(hi) < target
    hi = np.full(need.size, 100.0)
    for _ in range(200):
        f_hi, _ = fun(np.arange(need.size), hi)
        grow = f_hi > 0
        if not np.any(grow):
            break
        hi[grow] *= 4.0
    root, done = solve_decreasing(fun, np.zeros(need.size), hi)
    tau2[need] = root
    # roots above 100 must also lie below metafor's adaptive tau2.max of their own subset
    for j in np.flatnonzero(root > 100.0):
        i = need[j]
        if fam.kind == "full":
            ysub = pr.y
        elif fam.kind == "loo":
            ysub = np.delete(pr.y, i)
        else:
            ysub = pr.y[: i + 1]
        tmax = max(100.0, 10.0 * _mad(ysub) ** 2)
        if root[j] > tmax:
            done[j] = False
            reason[i] = (
                f"the Paule-Mandel estimate lies above tau2.max = {tmax:.6g} "
                "(metafor: \"Value of 'tau2.max' too low\")"
            )
    for j in np.flatnonzero(~done):
        i = need[j]
        ok[i] = False
        tau2[i] = np.nan
        if reason[i] is None:
            reason[i] = "root finding for the Paule-Mandel estimator did not converge"
    return tau2, ok, reason


# ----------------------------------------------------------------------------------------------
# fixed effects and heterogeneity statistics for a family
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FamilyFit:
    """Per-subset results of a family of fits (arrays with a leading subset axis)."""

    kb: np.ndarray
    tau2: np.ndarray
    ok: np.ndarray
    reason: list[str | None]
    beta: np.ndarray  # (B, p)
    vb: np.ndarray  # (B, p, p), scaled by s2w under knha
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    QE: np.ndarray
    QEp: np.ndarray
    I2: np.ndarray
    H2: np.ndarray
    vt: np.ndarray
    s2w: np.ndarray
    ddf: np.ndarray  # NaN under the z test
    test: list[str]


def fit_family(
    fam: Family,
    method: str,
    test: str,
    level: float,
    ctl: Control = DEFAULT_CONTROL,
    start: np.ndarray | None = None,
    newton: bool = False,
) -> FamilyFit:
    """Fit metafor's ``rma.uni`` model to every subset of ``fam`` (see module docstring)."""
    pr = fam.pr
    p = pr.p
    B = fam.B
    kb = fam.kb
    t2 = estimate_tau2(fam, method, ctl, start=start, newton=newton)
    tau2 = t2.tau2
    ok = t2.ok.copy()
    tau2_eval = np.where(ok, tau2, 0.0)
    (S1r,) = fam.var(np.arange(B), tau2_eval, (1,))
    S1 = Sums(S1r, p)
    A_c, beta_c, rss = wls(S1)
    # metafor applies the Knapp-Hartung test as requested, except that k = 1 forces test = "z"
    tests = [("z" if kb[i] == 1 else test) for i in range(B)]
    knha = np.array([tt == "knha" for tt in tests])
    tdist = np.array([tt in ("knha", "t") for tt in tests])
    with np.errstate(divide="ignore", invalid="ignore"):
        s2w = np.ones(B)
        s2w_k = np.where(rss <= _EPS, 0.0, rss / (kb - p))
        s2w = np.where(knha, s2w_k, s2w)
        vb_c = A_c * s2w[:, None, None]
        beta = pr.beta_back(beta_c)
        vb = pr.vb_back(vb_c)
        se = np.sqrt(vb[:, :, 0] if p == 1 else np.einsum("nii->ni", vb))
        zval = beta / se
        ddf = np.where(tdist, kb - p, np.nan)
        alpha = alpha_from_level(level)
        pval = np.empty_like(zval)
        crit = np.empty(B)
        zmask = ~tdist
        pval[zmask] = 2.0 * special.ndtr(-np.abs(zval[zmask]))
        crit[zmask] = -special.ndtri(alpha / 2.0)
        if np.any(tdist):
            d = ddf[tdist]
            good = d > 0
            pv = np.full((int(tdist.sum()), p), np.nan)
            pv[good] = 2.0 * special.stdtr(d[good, None], -np.abs(zval[tdist][good]))
            pval[tdist] = pv
            cr = np.full(d.size, np.nan)
            cr[good] = special.stdtrit(d[good], 1.0 - alpha / 2.0)
            crit[tdist] = cr
        ci_lb = beta - crit[:, None] * se
        ci_ub = beta + crit[:, None] * se
        qe, trP, _ = _fe_parts(fam)
        QE = np.maximum(0.0, qe)
        df = kb - p
        QEp = special.chdtrc(np.maximum(df, 1.0), QE)
        vt = df / trP
        if method == "EE":
            I2 = np.maximum(0.0, 100.0 * (QE - df) / QE)
            H2 = QE / df
        else:
            I2 = 100.0 * tau2 / (vt + tau2)
            H2 = tau2 / vt + 1.0
        sat = kb <= p
        QE = np.where(sat, 0.0, QE)
        QEp = np.where(sat, 1.0, QEp)
        I2 = np.where(sat, 0.0, I2)
        H2 = np.where(sat, 1.0, H2)
        vt = np.where(sat, 0.0, vt)
    bad = ~ok
    if np.any(bad):
        for arr in (beta, se, zval, pval, ci_lb, ci_ub):
            arr[bad] = np.nan
        vb[bad] = np.nan
        for arr in (tau2, I2, H2, s2w):
            arr[bad] = np.nan
    return FamilyFit(
        kb=kb,
        tau2=tau2,
        ok=ok,
        reason=t2.reason,
        beta=beta,
        vb=vb,
        se=se,
        zval=zval,
        pval=pval,
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        QE=QE,
        QEp=QEp,
        I2=I2,
        H2=H2,
        vt=vt,
        s2w=s2w,
        ddf=ddf,
        test=tests,
    )


# ----------------------------------------------------------------------------------------------
# standard error of tau² (single fit only)
# ----------------------------------------------------------------------------------------------


def _wsums(pr: Problem, c: np.ndarray) -> Sums:
    return Sums((pr.G * c[:, None]).sum(axis=0, keepdims=True), pr.p)


def _p_traces(pr: Problem, w: np.ndarray, v: np.ndarray | None) -> dict[str, float]:
    """Traces of P = W - WX(X'WX)^-1X'W (and of PV) with p x p algebra.

    Returns tr(P), tr(PP), and with ``v`` also tr(PV), tr(PVPV), tr(PVP).
    """
    S_w = _wsums(pr, w)
    A = _inv(S_w.XX)
    S_w2 = _wsums(pr, w * w)
    S_w3 = _wsums(pr, w**3)
    AX2 = A @ S_w2.XX
    out = {
        "trP": float(S_w.sw[0] - _tr(A, S_w2.XX)[0]),
        "trPP": float(S_w2.sw[0] - 2.0 * _tr(A, S_w3.XX)[0] + np.trace(AX2[0] @ AX2[0])),
    }
    if v is not None:
        S_wv = _wsums(pr, w * v)  # not needed for traces but gives sum(w v)
        S_w2v = _wsums(pr, w * w * v)
        S_w3v = _wsums(pr, w**3 * v)
        S_w3v2 = _wsums(pr, w**3 * v * v)
        S_w2v2 = _wsums(pr, (w * v) ** 2)
        AD = A @ S_w2v.XX
        out["trPV"] = float(S_wv.sw[0] - _tr(A, S_w2v.XX)[0])
        out["trPVPV"] = float(S_w2v2.sw[0] - 2.0 * _tr(A, S_w3v2.XX)[0] + np.trace(AD[0] @ AD[0]))
        out["trPVP"] = float(S_w2v.sw[0] - 2.0 * _tr(A, S_w3v.XX)[0] + np.trace(AD[0] @ AX2[0]))
    return out


def se_tau2(pr: Problem, method: str, tau2: float, tau2_0: float | None) -> float:
    """Standard error of tau² exactly as ``rma.uni()`` computes it for each estimator."""
    k, p = pr.k, pr.p
    v = pr.v
    t = max(tau2, 0.0)
    if method == "EE" or k == 1:
        return math.nan
    if method in ("HS", "DL"):
        w = 1.0 / v
        tr = _p_traces(pr, w, None)
        denom = float(np.sum(w)) ** 2 if method == "HS" else tr["trP"] ** 2
        return math.sqrt(1.0 / denom * (2 * (k - p) + 4 * t * tr["trP"] + 2 * t * t * tr["trPP"]))
    if method == "HE":
        tr = _p_traces(pr, np.ones(k), v)
        return math.sqrt(1.0 / (k - p) ** 2 * (2 * tr["trPVPV"] + 4 * t * tr["trPV"] + 2 * t * t * (k - p)))
    if method == "SJ":
        assert tau2_0 is not None
        w = 1.0 / (v + tau2_0)
        tr = _p_traces(pr, w, v)
        return math.sqrt(
            tau2_0**2 / (k - p) ** 2 * (2 * tr["trPVPV"] + 4 * t * tr["trPVP"] + 2 * t * t * tr["trPP"])
        )
    w = 1.0 / (v + tau2)
    if method == "ML":
        return math.sqrt(2.0 / float(np.sum(w * w)))
    if method == "REML":
        return math.sqrt(2.0 / _p_traces(pr, w, None)["trPP"])
    # EB and PM: sqrt(2 k^2 / (k - p)) / sum(w)
    return math.sqrt(2.0 * k * k / (k - p)) / float(np.sum(w))


# ----------------------------------------------------------------------------------------------
# one model: the result container and a fast path for intercept-only models
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class SingleFit:
    """Results of one model (what ``rma.uni`` computes before assembling its output)."""

    tau2: float
    tau2_0: float
    se_tau2: float | None  # None: compute from the design (meta-regression)
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    QE: float
    QEp: float
    I2: float
    H2: float
    vt: float
    s2w: float
    ddf: float
    ok: bool
    reason: str | None


def _failed_fit(p: int, tau2_0: float, qe: float, reason: str | None) -> SingleFit:
    """A fit whose tau² iteration failed: every estimate NaN, with the reason kept."""
    nan = np.full(p, np.nan)
    return SingleFit(
        math.nan,
        tau2_0,
        math.nan,
        nan,
        np.full((p, p), np.nan),
        nan,
        nan,
        nan,
        nan,
        nan,
        qe,
        math.nan,
        math.nan,
        math.nan,
        math.nan,
        math.nan,
        math.nan,
        False,
        reason,
    )


class IntOnly:
    """Weighted sums for one intercept-only model, with buffers reused across iterations.

    ``sums(t, n)`` returns, for j = 1..n, the row ``[sum w^j, sum w^j y, sum w^j y^2]`` with
    ``w = 1/(v + t)`` and y centred at its mean, from one (n x k) @ (k x 3) product. Setting
    ``m`` restricts every sum to the first m studies (trim-and-fill fits prefixes of one sorted
    data set).
    """

    __slots__ = ("G", "Wp", "k", "m", "tmp", "v", "y", "ybar")

    def __init__(self, y: np.ndarray, v: np.ndarray) -> None:
        k = y.size
        self.k = k
        self.m = k
        self.y = y
        self.v = v
        self.ybar = float(y.mean())
        G = np.empty((k, 3))
        G[:, 0] = 1.0
        np.subtract(y, self.ybar, out=G[:, 1])
        np.multiply(G[:, 1], G[:, 1], out=G[:, 2])
        self.G = G
        self.Wp = np.empty((3, k))
        self.tmp = np.empty(k)

    def q_profile(self, t: float) -> tuple[float, float]:
        """Generalised Q statistic at tau² = t and its derivative -sum w²(y - mu)²."""
        s1, s2 = self.sums(t, 2)
        mu = s1[1] / s1[0]
        return s1[2] - mu * s1[1], -(s2[2] - 2.0 * mu * s2[1] + mu * mu * s2[0])

    def sums(self, t: float, n: int = 1) -> list[list[float]]:
        m = self.m
        if m == self.k:
            Wp, tmp, G = self.Wp, self.tmp, self.G
            np.add(self.v, t, out=tmp)
        else:
            Wp, tmp, G = self.Wp[:, :m], self.tmp[:m], self.G[:m]
            np.add(self.v[:m], t, out=tmp)
        np.divide(1.0, tmp, out=Wp[0])
        if n > 1:
            np.multiply(Wp[0], Wp[0], out=Wp[1])
        if n > 2:
            np.multiply(Wp[1], Wp[0], out=Wp[2])
        return (Wp[:n] @ G).tolist()

    def unweighted(self) -> tuple[float, float]:
        """(sum (y - mean)^2, sum v) over the active studies: HE's and SJ's ingredients."""
        m = self.m
        c = self.G[:m].sum(axis=0).tolist()
        return c[2] - c[1] * c[1] / m, float(self.v[:m].sum())


def _ypy(s1: list[float]) -> float:
    """y'Py (the weighted residual sum of squares) from the sums of weight w."""
    return s1[2] - s1[1] * s1[1] / s1[0]


def tau2_intercept_only(
    S: IntOnly, method: str, ctl: Control, fe: list[list[float]] | None = None
) -> tuple[float, float, bool, str | None]:
    """tau² of an intercept-only model on the active studies of ``S``: (tau2, SJ start, ok, reason).

    ``fe`` are the equal-effects sums ``S.sums(0, 2)`` when the caller has them already.
    """
    k = S.m
    df = k - 1
    if k == 1 or method == "EE":
        return 0.0, math.nan, True, None
    if method in ("DL", "HS"):
        if fe is None:
            fe = S.sums(0.0, 2)
        sw0 = fe[0][0]
        q = _ypy(fe[0])
        if method == "DL":
            return max(0.0, (q - df) / (sw0 - fe[1][0] / sw0)), math.nan, True, None
        return max(0.0, (q - k) / sw0), math.nan, True, None
    if method == "HE":
        return max(0.0, _he1(S)), math.nan, True, None
    if method == "SJ":
        rss, _ = S.unweighted()
        t0 = max(0.0, rss / k)
        return t0 * _ypy(S.sums(t0, 1)[0]) / df, t0, True, None
    if method in ("ML", "REML", "EB"):
        t, ok, reason = _fisher1(S, method, ctl)
        return t, math.nan, ok, reason
    t, ok, reason = _pm1(S, ctl)
    return t, math.nan, ok, reason


def fit_intercept_only(
    y: np.ndarray, v: np.ndarray, method: str, test: str, level: float, ctl: Control = DEFAULT_CONTROL
) -> SingleFit:
    """``rma.uni`` for an intercept-only model with scalar arithmetic on O(k) weighted sums.

    Same definitions and iteration as :func:`fit_family` (and metafor): HE start, Fisher scoring
    with step halving and the tau² = 0 likelihood check for ML/REML, ``uniroot()`` for PM. This
    is the hot path of ``rma()``, trim-and-fill and subgroup fits.
    """
    k = y.size
    S = IntOnly(y, v)
    fe = S.sums(0.0, 3)  # equal-effects weights 1/v
    sw0 = fe[0][0]
    qe = max(0.0, _ypy(fe[0]))
    trp0 = sw0 - fe[1][0] / sw0
    se_t2: float | None = math.nan
    df = k - 1
    tau2, tau2_0, ok, reason = tau2_intercept_only(S, method, ctl, fe)
    if not ok:
        return _failed_fit(1, tau2_0, qe, reason)
    s = S.sums(tau2, 3)
    sw = s[0][0]
    mu = s[0][1] / sw
    beta = mu + S.ybar
    if k == 1:
        test = "z"
    s2w = 1.0
    if test == "knha":
        rss = s[0][2] - mu * s[0][1]
        s2w = 0.0 if rss <= _EPS else rss / df
    var = s2w / sw
    se = math.sqrt(var)
    alpha = alpha_from_level(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / se if se > 0 else math.copysign(math.inf, beta) if beta != 0 else math.nan
    if test in ("knha", "t"):
        ddf = float(df)
        if df > 0:
            pval = float(2.0 * special.stdtr(df, -abs(z)))
            crit = float(special.stdtrit(df, 1.0 - alpha / 2.0))
        else:
            pval = crit = math.nan
    else:
        ddf = math.nan
        pval = float(2.0 * special.ndtr(-abs(z)))
        crit = float(-special.ndtri(alpha / 2.0))
    if k > 1:
        qep = float(special.chdtrc(df, qe))
        vt = df / trp0
        if method == "EE":
            i2 = max(0.0, 100.0 * (qe - df) / qe) if qe > 0 else 0.0
            h2 = qe / df
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
        if method != "EE":
            se_t2 = _se_tau2_1(method, k, tau2, tau2_0, s, fe, S, v)
    else:
        qe, qep, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0
    one = np.array
    return SingleFit(
        tau2=tau2,
        tau2_0=tau2_0,
        se_tau2=se_t2,
        beta=one([beta]),
        vb=one([[var]]),
        se=one([se]),
        zval=one([z]),
        pval=one([pval]),
        ci_lb=one([beta - crit * se]),
        ci_ub=one([beta + crit * se]),
        QE=qe,
        QEp=qep,
        I2=i2,
        H2=h2,
        vt=vt,
        s2w=s2w,
        ddf=ddf,
        ok=True,
        reason=None,
    )


def _he1(S: IntOnly) -> float:
    rss, sv = S.unweighted()
    k = S.m
    return (rss - (sv - sv / k)) / (k - 1)


def _newton_ok(adj: float, nadj: float, dscore: float) -> bool:
    """Use the Newton step when the score decreases and the step agrees with Fisher's to 10x."""
    if not dscore < 0.0 or adj == 0.0:
        return False
    ratio = nadj / adj
    return 0.1 < ratio < 10.0


def _score1(s: list[list[float]], method: str, k: int, newton: bool) -> tuple[float, float, float | None]:
    """(score, Fisher information, derivative of the score) of one intercept-only model from its
    sums; the Fisher step is score/information (metafor's ``adj``)."""
    s1 = s[0]
    sw = s1[0]
    mu = s1[1] / sw
    if method == "EB":
        score = _ypy(s1) * k / (k - 1) - k
        dscore = None
        if newton:
            s2 = s[1]
            dscore = -(s2[2] - 2.0 * mu * s2[1] + mu * mu * s2[0]) * k / (k - 1)
        return score, sw, dscore
    s2 = s[1]
    yppy = s2[2] - 2.0 * mu * s2[1] + mu * mu * s2[0]
    if method == "ML":
        score, info = yppy - sw, s2[0]
    else:
        r = s2[0] / sw
        info = s2[0] - 2.0 * s[2][0] / sw + r * r
        score = yppy - (sw - r)
    dscore = None
    if newton:
        s3 = s[2]
        u = s2[1] - s2[0] * mu
        ypppy = s3[2] - 2.0 * mu * s3[1] + mu * mu * s3[0] - u * u / sw
        dscore = -2.0 * ypppy + (s2[0] if method == "ML" else info)
    return score, info, dscore


def _fisher1(
    S: IntOnly, method: str, ctl: Control, start: float | None = None, it: int = 0, ll0: bool = True
) -> tuple[float, bool, str | None]:
    """metafor's Fisher scoring for one intercept-only model (see :func:`_fisher_scoring`).

    ``start``/``it`` continue an iteration begun elsewhere (the batched solver hands its last
    few subsets over); ``ll0 = False`` leaves metafor's tau² = 0 likelihood check to the caller.
    """
    k = S.m
    t = max(0.0, _he1(S)) if start is None else start
    return _fisher_loop(
        t,
        lambda t, n, newton: _score1(S.sums(t, n), method, k, newton),
        lambda t: _ll1(S, t, method),
        method,
        ctl,
        it,
        ll0,
    )


def _fisher_loop(
    t: float,
    score_at: Callable[[float, int, bool], tuple[float, float, float | None]],
    loglik_at: Callable[[float], float],
    method: str,
    ctl: Control,
    it: int,
    ll0: bool,
) -> tuple[float, bool, str | None]:
    """The iteration shared by the intercept-only and the meta-regression fast paths.

    ``score_at(t, n, newton)`` gives the score, the Fisher information and (for Newton steps) the
    derivative of the score at ``t``; ``loglik_at(t)`` the (restricted) log-likelihood. Steps are
    metafor's: Fisher (or a safe Newton) step, halved until tau² stays non-negative, stopping when
    the change is below ``threshold``; with ``ll0``, tau² = 0 wins if its likelihood is higher.
    """
    newton = ctl.threshold < NEWTON_BELOW_THRESHOLD
    n = (2 if newton else 1) if method == "EB" else 3 if (method == "REML" or newton) else 2
    while True:
        it += 1
        score, info, dscore = score_at(t, n, newton)
        adj = score / info
        if dscore is not None and dscore != 0.0:
            nadj = -score / dscore
            if _newton_ok(adj, nadj, dscore):
                adj = nadj
        if adj != adj:  # NaN
            adj = 0.0
        if math.isinf(adj):
            return math.nan, False, "Fisher scoring diverged (infinite step)"
        if t == 0.0 and adj < 0.0:
            adj = 0.0
        while t + adj < 0.0:  # step halving keeps tau² >= 0
            adj *= 0.5
        tn = t + adj
        change = abs(tn - t)
        t = tn
        if change <= max(ctl.threshold, 8.0 * _EPS * t):
            break
        if it >= ctl.maxiter:
            return math.nan, False, f"Fisher scoring did not converge in {ctl.maxiter} iterations"
    if ll0 and method in ("ML", "REML") and t > ctl.threshold and loglik_at(0.0) - loglik_at(t) > ctl.tol:
        t = 0.0
    return t, True, None


def _ll1(S: IntOnly, t: float, method: str) -> float:
    s1 = S.sums(t, 1)[0]
    rss = _ypy(s1)
    k = S.m
    logsum = float(np.log(S.tmp[:k]).sum())  # S.tmp holds v + t after sums()
    if method == "ML":
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * rss
    return -0.5 * (k - 1) * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * math.log(s1[0]) - 0.5 * rss


def _pm1(S: IntOnly, ctl: Control) -> tuple[float, bool, str | None]:
    target = S.m - 1
    y = S.y[: S.m]

    def q(t: float) -> float:
        return _ypy(S.sums(t, 1)[0]) - target

    f0 = q(0.0)
    if f0 < 0:
        return 0.0, True, None
    tmax = max(100.0, 10.0 * _mad(y) ** 2)
    fmax = q(tmax)
    if fmax > 0:
        return (
            math.nan,
            False,
            (
                f"the Paule-Mandel estimate lies above tau2.max = {tmax:.6g} "
                "(metafor: \"Value of 'tau2.max' too low\")"
            ),
        )
    root, done = zeroin(q, 0.0, tmax, f0, fmax, ctl.tol, ctl.maxiter)
    if not done:
        return math.nan, False, "uniroot() for the Paule-Mandel estimator did not converge"
    return root, True, None


def _se_tau2_1(
    method: str,
    k: int,
    tau2: float,
    tau2_0: float,
    s: list[list[float]],
    fe: list[list[float]],
    S: IntOnly,
    v: np.ndarray,
) -> float:
    """Standard error of tau² (as :func:`se_tau2`) for an intercept-only model."""
    t = max(tau2, 0.0)
    df = k - 1
    if method in ("HS", "DL"):
        sw, s2, s3 = fe[0][0], fe[1][0], fe[2][0]
        trp = sw - s2 / sw
        trpp = s2 - 2.0 * s3 / sw + (s2 / sw) ** 2
        denom = sw * sw if method == "HS" else trp * trp
        return math.sqrt((2 * df + 4 * t * trp + 2 * t * t * trpp) / denom)
    if method == "HE":
        sv, sv2 = float(v.sum()), float((v * v).sum())
        trpv = sv - sv / k
        trpvpv = sv2 - 2.0 * sv2 / k + (sv / k) ** 2
        return math.sqrt((2 * trpvpv + 4 * t * trpv + 2 * t * t * df) / df**2)
    if method == "SJ":
        w = 1.0 / (v + tau2_0)
        wv = w * v
        sw, sw2, sw3 = float(w.sum()), float((w * w).sum()), float((w**3).sum())
        sw2v, sw3v, sw3v2, swv2 = (
            float((w * wv).sum()),
            float((w * w * wv).sum()),
            float((w * wv * wv).sum()),
            float((wv * wv).sum()),
        )
        trpvpv = swv2 - 2.0 * sw3v2 / sw + (sw2v / sw) ** 2
        trpvp = sw2v - 2.0 * sw3v / sw + (sw2v / sw) * (sw2 / sw)
        trpp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
        return math.sqrt(tau2_0**2 / df**2 * (2 * trpvpv + 4 * t * trpvp + 2 * t * t * trpp))
    sw, s2, s3 = s[0][0], s[1][0], s[2][0]
    if method == "ML":
        return math.sqrt(2.0 / s2)
    if method == "REML":
        return math.sqrt(2.0 / (s2 - 2.0 * s3 / sw + (s2 / sw) ** 2))
    return math.sqrt(2.0 * k * k / df) / sw


class GenOnly:
    """Weighted sums and small dense algebra for one meta-regression (p > 1).

    The single-model counterpart of :class:`Family` without the batching machinery: every
    iteration is one (n x k) @ (k x q) product and p x p algebra.
    """

    def __init__(self, pr: Problem) -> None:
        self.pr = pr
        self.p = pr.p
        self.k = pr.k
        self.Wp = np.empty((3, pr.k))
        self.tmp = np.empty(pr.k)

    def sums(self, t: float, n: int = 1) -> np.ndarray:
        Wp = self.Wp
        np.add(self.pr.v, t, out=self.tmp)
        np.divide(1.0, self.tmp, out=Wp[0])
        if n > 1:
            np.multiply(Wp[0], Wp[0], out=Wp[1])
        if n > 2:
            np.multiply(Wp[1], Wp[0], out=Wp[2])
        return Wp[:n] @ self.pr.G

    def unpack(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        p = self.p
        pp = p * p
        return row[:pp].reshape(p, p), row[pp : pp + p], float(row[pp + p])

    def wls(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
        """(A, beta, y'Py, XX, Xy) for the sums of weight w."""
        XX, Xy, yy = self.unpack(row)
        A = _inv_small(XX)
        b = A @ Xy
        return A, b, yy - float(b @ Xy), XX, Xy


def _inv_small(M: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric p x p matrix; closed form for 2 x 2 (Egger's and most regressions
    with one moderator), where ``np.linalg.inv``'s call overhead dominates."""
    if M.shape[0] == 2:
        a, b, d = float(M[0, 0]), float(M[0, 1]), float(M[1, 1])
        det = a * d - b * b
        if det == 0.0 or not math.isfinite(det):
            return np.linalg.inv(M)  # raises LinAlgError for a singular matrix
        return np.array([[d / det, -b / det], [-b / det, a / det]])
    return np.linalg.inv(M)


def _resq(b: np.ndarray, XX: np.ndarray, Xy: np.ndarray, yy: float) -> float:
    return yy - 2.0 * float(b @ Xy) + float(b @ XX @ b)


def fit_general_single(
    pr: Problem, method: str, test: str, level: float, ctl: Control = DEFAULT_CONTROL
) -> SingleFit:
    """``rma.uni`` for one meta-regression (p > 1): the same definitions and iterations as
    :func:`fit_family` (and metafor), with the overhead of batching removed."""
    S = GenOnly(pr)
    k, p = pr.k, pr.p
    df = k - p
    fe = S.sums(0.0, 2)
    A0, _, qe_raw, _, _ = S.wls(fe[0])
    XX2_0 = S.unpack(fe[1])[0]
    trp0 = float(fe[0][0]) - float(np.sum(A0 * XX2_0))
    qe = max(0.0, qe_raw)
    tau2_0 = math.nan
    reason: str | None = None
    ok = True
    G = pr.G
    if method == "EE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = max(0.0, (qe_raw - df) / trp0)
    elif method == "HS":
        tau2 = max(0.0, (qe_raw - k) / float(fe[0][0]))
    elif method in ("HE", "ML", "REML", "EB"):
        XX0, Xy0, yy0 = S.unpack(G.sum(axis=0))
        A = np.linalg.inv(XX0)
        rss = yy0 - float(Xy0 @ A @ Xy0)
        XXv = S.unpack(pr.v @ G)[0]
        he = (rss - (float(pr.v.sum()) - float(np.sum(A * XXv)))) / df
        if method == "HE":
            tau2 = max(0.0, he)
        else:
            tau2, ok, reason = _fisher_gen(S, method, ctl, max(0.0, he))
    elif method == "SJ":
        tau2_0 = max(0.0, float(G[:, -1].sum()) / k)  # y is centred: var(y) (k-1)/k
        tau2 = tau2_0 * S.wls(S.sums(tau2_0, 1)[0])[2] / df
    else:  # PM
        target = df

        def q(t: float) -> float:
            return S.wls(S.sums(t, 1)[0])[2] - target

        f0 = qe_raw - target
        if f0 < 0:
            tau2 = 0.0
        else:
            tmax = max(100.0, 10.0 * _mad(pr.y) ** 2)
            fmax = q(tmax)
            if fmax > 0:
                ok, tau2 = False, math.nan
                reason = (
                    f"the Paule-Mandel estimate lies above tau2.max = {tmax:.6g} "
                    "(metafor: \"Value of 'tau2.max' too low\")"
                )
            else:
                tau2, ok = zeroin(q, 0.0, tmax, f0, fmax, ctl.tol, ctl.maxiter)
                if not ok:
                    reason = "uniroot() for the Paule-Mandel estimator did not converge"
    if not ok:
        return _failed_fit(p, tau2_0, qe, reason)
    A, b_c, rss, _, _ = S.wls(S.sums(tau2, 1)[0])
    s2w = 1.0
    if test == "knha":
        s2w = 0.0 if rss <= _EPS else rss / df
    b_c = b_c.copy()
    b_c[0] += pr.ybar
    beta = b_c.copy()
    beta[1:] = beta[1:] / pr.scale
    beta[0] -= float(beta[1:] @ pr.center)
    vb = pr.vb_back((s2w * A)[None])[0]
    se = np.sqrt(np.diag(vb))
    alpha = alpha_from_level(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / se
        if test in ("knha", "t"):
            ddf = float(df)
            if df > 0:
                pval = 2.0 * special.stdtr(df, -np.abs(z))
                crit = float(special.stdtrit(df, 1.0 - alpha / 2.0))
            else:
                pval = np.full(p, np.nan)
                crit = math.nan
        else:
            ddf = math.nan
            pval = 2.0 * special.ndtr(-np.abs(z))
            crit = float(-special.ndtri(alpha / 2.0))
    if k > p:
        qep = float(special.chdtrc(df, qe))
        vt = df / trp0
        if method == "EE":
            i2 = max(0.0, 100.0 * (qe - df) / qe) if qe > 0 else 0.0
            h2 = qe / df
        else:
            i2 = 100.0 * tau2 / (vt + tau2)
            h2 = tau2 / vt + 1.0
    else:
        qe, qep, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0
    return SingleFit(
        tau2=tau2,
        tau2_0=tau2_0,
        se_tau2=None,
        beta=beta,
        vb=vb,
        se=se,
        zval=z,
        pval=pval,
        ci_lb=beta - crit * se,
        ci_ub=beta + crit * se,
        QE=qe,
        QEp=qep,
        I2=i2,
        H2=h2,
        vt=vt,
        s2w=s2w,
        ddf=ddf,
        ok=True,
        reason=None,
    )


def _score_gen(S: GenOnly, M: np.ndarray, method: str, newton: bool) -> tuple[float, float, float | None]:
    """(score, Fisher information, derivative of the score) of one meta-regression."""
    k, p = S.k, S.p
    A, b, ypy, _, _ = S.wls(M[0])
    sw = float(M[0][0])
    if method == "EB":
        score = ypy * k / (k - p) - k
        dscore = None
        if newton:
            XX2, Xy2, yy2 = S.unpack(M[1])
            dscore = -_resq(b, XX2, Xy2, yy2) * k / (k - p)
        return score, sw, dscore
    XX2, Xy2, yy2 = S.unpack(M[1])
    yppy = _resq(b, XX2, Xy2, yy2)
    if method == "ML":
        score, info = yppy - sw, float(M[1][0])
    else:
        AX2 = A @ XX2
        trp = sw - float(np.trace(AX2))
        info = float(M[1][0]) - 2.0 * float(np.sum(A * S.unpack(M[2])[0])) + float(np.sum(AX2 * AX2.T))
        score = yppy - trp
    dscore = None
    if newton:
        XX3, Xy3, yy3 = S.unpack(M[2])
        u = Xy2 - XX2 @ b  # X'W^2 r
        ypppy = _resq(b, XX3, Xy3, yy3) - float(u @ A @ u)
        dscore = -2.0 * ypppy + (float(M[1][0]) if method == "ML" else info)
    return score, info, dscore


def _fisher_gen(
    S: GenOnly, method: str, ctl: Control, t: float, it: int = 0, ll0: bool = True
) -> tuple[float, bool, str | None]:
    """metafor's Fisher scoring for one meta-regression (see :func:`_fisher_scoring`), with the
    Newton steps of :func:`_fisher1`."""
    return _fisher_loop(
        t,
        lambda t, n, newton: _score_gen(S, S.sums(t, n), method, newton),
        lambda t: _ll_gen(S, t, method),
        method,
        ctl,
        it,
        ll0,
    )


def _ll_gen(S: GenOnly, t: float, method: str) -> float:
    M = S.sums(t, 1)
    _, _, rss, XX, _ = S.wls(M[0])
    logsum = float(np.log(S.tmp).sum())
    k, p = S.k, S.p
    if method == "ML":
        return -0.5 * k * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * rss
    logdet = float(np.linalg.slogdet(XX)[1])  # on the centred/scaled scale: a constant offset
    return -0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * logdet - 0.5 * rss
