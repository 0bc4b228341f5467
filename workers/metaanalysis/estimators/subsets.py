"""The studies of a model and families of their subsets, as weighted sums.

Every quantity metafor's ``rma.uni()`` computes from the k x k matrix ``P = W - W X (X'WX)^-1 X'W``
is rewritten with weighted sums ``sum_j c_j G_j`` of the per-study products ``G_j = (x_j x_j',
x_j y_j, y_j^2)``, so a fit costs O(k p^2) per iteration and never forms a k x k matrix. A
:class:`Family` holds the subsets fitted together: ``full`` (the one model on all k studies,
``rma()``), ``loo`` (the k leave-one-out models, ``leave1out()`` and ``influence()``) or ``cumul``
(the k cumulative models on studies 1..i, ``cumul()``). Sums with fixed weights (1/v, 1, v, ...)
come from prefix/suffix cumulative sums in O(k). Sums with tau²-dependent weights are evaluated in
cache-sized row chunks of a (subset x study) weight matrix whose excluded entries are zeroed, so
every subset's sum runs over exactly its own studies; for large leave-one-out and cumulative
families an exact Taylor series in tau² around a few centres gives the same sums in O(k) per
centre (the masked sums are the fallback wherever the series could lose digits).

Numerically, y is centred at its mean (as metafor's ``Ymc``) and the moderator columns are
centred and scaled; because the intercept is always in the model this is a reparametrisation
that leaves P unchanged, and it keeps X'WX well conditioned. Coefficients and their covariance
are mapped back to the original parametrisation at the end.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

# Elements of one chunk of the (subset x study) weight matrix: small enough for the few arrays of
# a chunk to stay in cache (measured fastest at k = 10^4).
_CHUNK_ELEMENTS = 1 << 14
# Leave-one-out and cumulative families with at least this many (subset x study) elements use
# the series.
_SERIES_MIN_ELEMENTS = 1 << 16
# Largest distance |tau² - c| / (min v + c) of a cumulative subset from its series centre: the
# series then converges at least geometrically with this ratio (about 20 terms to 1e-17).
_CLUSTER_RHO = 0.1
# Series terms are added until the next would change a sum by less than this, relative.
_SERIES_TOL = 1e-17


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
    ``"cumul"`` (subset i holds studies 0..i). ``problem`` is the model the subsets are taken from,
    ``n_subsets`` their number and ``sizes`` the number of studies in each.
    """

    def __init__(self, problem: Problem, kind: str) -> None:
        if kind not in ("full", "loo", "cumul"):
            raise ValueError(f"unknown subset family {kind!r}")
        self.problem = problem
        self.kind = kind
        k = problem.k
        #: number of studies in each subset
        if kind == "full":
            self.n_subsets = 1
            self.sizes = np.array([float(k)])
        elif kind == "loo":
            self.n_subsets = k
            self.sizes = np.full(k, float(k - 1))
        else:
            self.n_subsets = k
            self.sizes = np.arange(1, k + 1, dtype=float)
        self._fixed_cache: dict[str, np.ndarray] = {}
        self._tri_full: np.ndarray | None = None

    def inestimable(self) -> np.ndarray:
        """Subsets whose design is singular (a moderator no longer estimable without a study).

        metafor's refit then drops the coefficient and influence()/leave1out() report NA; the
        check is on the unweighted X'X of each subset, scaled to a correlation-type matrix.
        """
        p = self.problem.p
        if p == 1:
            return np.zeros(self.n_subsets, dtype=bool)
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
        G = self.problem.G
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
            out.shape = (self.n_subsets, q)
        self._fixed_cache[key] = out
        return out

    def var(self, idx: np.ndarray, t: np.ndarray, powers: tuple[int, ...]) -> list[np.ndarray]:
        """Sums of ``w_j^n G_j`` with ``w_j = 1/(v_j + t_i)`` over subset i, for i in ``idx``.

        Returns one (len(idx), q) array per power in ``powers``.
        """
        pr = self.problem
        n = idx.size
        outs = [np.empty((n, pr.q)) for _ in powers]
        if n == 0:
            return outs
        if self.kind == "cumul" and n * pr.k >= _SERIES_MIN_ELEMENTS:
            return self._cumul_series(idx, t, powers)
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
        pr = self.problem
        v, G = pr.v, pr.G
        c = 0.5 * (float(t.min()) + float(t.max()))
        d = t - c
        vmin = float(v.min())
        rho = np.abs(d) / (vmin + c)
        ok = rho <= 0.2
        rho_max = float(rho[ok].max()) if np.any(ok) else 0.0
        nmax = max(powers)
        M = _series_terms(nmax, rho_max)
        Wp = _weight_powers(v, c, nmax + M)
        T = Wp @ G  # T[p - 1] = sum_j w_j^p G_j
        own_w = 1.0 / (v[idx] + t)
        with np.errstate(over="ignore", invalid="ignore"):  # rows with rho > 0.2 are redone below
            dm = d[:, None] ** np.arange(M + 1)[None, :]
            for o, nn in zip(outs, powers, strict=True):
                np.matmul(dm * _series_coefficients(nn, M), T[nn - 1 : nn + M], out=o)
                o -= (own_w**nn)[:, None] * G[idx]
            # the own term's share of sum w^n for the largest power: above 0.9 the subtraction
            # loses more than one digit, so such rows are recomputed exactly
            own_n = own_w**nmax
            share = own_n / (outs[powers.index(nmax)][:, 0] + own_n)
            ok &= share <= 0.9
        return np.flatnonzero(~ok)

    def _cumul_series(self, idx: np.ndarray, t: np.ndarray, powers: tuple[int, ...]) -> list[np.ndarray]:
        """Cumulative sums through Taylor series in tau² around a few centres.

        The expansion of :meth:`_loo_series` with prefix sums ``T_p(i) = sum_{j <= i} (v_j + c)^-p
        G_j`` in place of the totals. The cumulative tau² values spread more than the leave-one-out
        ones (the first subsets are small), so the subsets are grouped by tau² into clusters whose
        rows all lie within ``rho <= _CLUSTER_RHO`` of their centre; each cluster costs one
        O(P k q) pass. Subsets where that pass would cost more than their exact masked sums (the
        small first subsets, lone outlying values) take the exact route.
        """
        pr = self.problem
        v, G = pr.v, pr.G
        outs = [np.empty((idx.size, pr.q)) for _ in powers]
        vmin = float(v.min())
        nmax = max(powers)
        exact = ~np.isfinite(t) | (t < 0)
        order = np.flatnonzero(~exact)
        order = order[np.argsort(t[order], kind="stable")]
        ts = t[order]
        start = 0
        while start < order.size:
            # the centre c whose lower reach is exactly ts[start]: (c - t)/(vmin + c) = rho
            c = (float(ts[start]) + _CLUSTER_RHO * vmin) / (1.0 - _CLUSTER_RHO)
            end = int(np.searchsorted(ts, c + _CLUSTER_RHO * (vmin + c), side="right"))
            rows = order[start:end]
            start = end
            ii = idx[rows]
            cols = int(ii.max()) + 1
            d = t[rows] - c
            rho_max = float(np.abs(d).max()) / (vmin + c)
            M = _series_terms(nmax, rho_max)
            if float(ii.sum()) < 2.0 * (nmax + M) * cols:  # the exact sums are cheaper here
                exact[rows] = True
                continue
            T = _weight_powers(v[:cols], c, nmax + M)[:, :, None] * G[None, :cols, :]
            np.cumsum(T, axis=1, out=T)
            Ti = T[:, ii, :]  # (P, rows, q): the prefix sums at each subset's last study
            dm = d[:, None] ** np.arange(M + 1)[None, :]
            for o, nn in zip(outs, powers, strict=True):
                o[rows] = np.einsum("nm,mnq->nq", dm * _series_coefficients(nn, M), Ti[nn - 1 : nn + M])
        rest = np.flatnonzero(exact)
        if rest.size:
            for o, so in zip(outs, self._exact(idx[rest], t[rest], powers), strict=True):
                o[rest] = so
        return outs

    def _exact(self, idx: np.ndarray, t: np.ndarray, powers: tuple[int, ...]) -> list[np.ndarray]:
        """Sums by masked (subset x study) weight matrices, in cache-sized row chunks."""
        pr = self.problem
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
        k = self.problem.k
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


def _series_terms(nmax: int, rho: float) -> int:
    """Terms beyond the first of the series in tau² for powers up to ``nmax`` at ratio ``rho``."""
    M = 0
    while M < 40 and math.comb(nmax + M, M + 1) * rho ** (M + 1) > _SERIES_TOL:
        M += 1
    return M


def _weight_powers(v: np.ndarray, c: float, P: int) -> np.ndarray:
    """Rows ``(v + c)^-1 .. (v + c)^-P``."""
    Wp = np.empty((P, v.size))
    Wp[0] = 1.0 / (v + c)
    for j in range(1, P):
        np.multiply(Wp[j - 1], Wp[0], out=Wp[j])
    return Wp


def _series_coefficients(n: int, M: int) -> np.ndarray:
    """(-1)^m C(n + m - 1, m), m = 0..M: the Taylor coefficients of (x + d)^-n in d."""
    return np.array([(-1) ** m * math.comb(n + m - 1, m) for m in range(M + 1)], dtype=float)


class Sums:
    """Unpacked weighted sums for n subsets, C a diagonal matrix of per-study weights.

    Attributes
    ----------
    XtCX : ndarray, shape (n, p, p)
        X'CX of each subset.
    XtCy : ndarray, shape (n, p)
        X'Cy.
    ytCy : ndarray, shape (n,)
        y'Cy.
    sum_c : ndarray, shape (n,)
        The sum of the weights (the intercept's entry of X'CX), tr(C).
    p : int
        Number of coefficients.
    """

    __slots__ = ("XtCX", "XtCy", "p", "sum_c", "ytCy")

    def __init__(self, S: np.ndarray, p: int) -> None:
        n = S.shape[0]
        pp = p * p
        self.p = p
        self.XtCX = S[:, :pp].reshape(n, p, p)
        self.XtCy = S[:, pp : pp + p]
        self.ytCy = S[:, pp + p]
        self.sum_c = S[:, 0]


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
    A = _inv(S1.XtCX)
    beta = _solve(A, S1.XtCy)
    rss = S1.ytCy - _dot(beta, S1.XtCy)
    return A, beta, rss


def _resid_quad(beta: np.ndarray, S: Sums) -> np.ndarray:
    """sum_j c_j (y_j - x_j'beta)^2 from the sums of weight c."""
    return S.ytCy - 2.0 * _dot(beta, S.XtCy) + _quad(beta, S.XtCX)


def hedges_untruncated(family: Family) -> np.ndarray:
    """Hedges' (1983) estimator of every subset, untruncated: (RSS_OLS - tr(PV)) / (k - p).

    Returns
    -------
    ndarray
        metafor 3.8-1 ``rma.uni(method = "HE")`` before truncation at 0 (also the starting value
        of its Fisher scoring), one value per subset.
    """
    pr = family.problem
    p = pr.p
    S0 = Sums(family.fixed("one", None), p)
    Sv = Sums(family.fixed("v", pr.v), p)
    A0, _, rss = wls(S0)
    trPV = Sv.sum_c - _tr(A0, Sv.XtCX)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (rss - trPV) / (family.sizes - p)


def equal_effects_parts(family: Family) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(QE, tr(P_FE), sum(1/v)) with the inverse-variance (equal-effects) weights."""
    pr = family.problem
    S1 = Sums(family.fixed("w1", 1.0 / pr.v), pr.p)
    S2 = Sums(family.fixed("w2", 1.0 / pr.v**2), pr.p)
    A, _, rss = wls(S1)
    trP = S1.sum_c - _tr(A, S2.XtCX)
    return rss, trP, S1.sum_c
