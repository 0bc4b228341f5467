"""Three-level models, cluster-robust inference and aggregation against an independent oracle.

The engine works block by block (studies stacked by size, the sums of the CR2 degrees of freedom
expanded so that no cluster x cluster array is formed). The oracle here writes the definitions of
``shared/reference/README.md`` with dense k x k matrices and explicit double loops over clusters,
on random data, so that every shortcut the engine takes is checked against the plain formula. The
reference cases (metafor 3.8-1, clubSandwich 0.5.8) are checked in test_reference_cases.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import linalg, optimize, stats

from workers.metaanalysis.errors import EngineError, InvalidInputError
from workers.metaanalysis.multilevel.aggregate import aggregate
from workers.metaanalysis.multilevel.fit import rma_mv
from workers.metaanalysis.multilevel.profile import profile_confint
from workers.metaanalysis.multilevel.robust import robust, working_model_of_rma
from workers.metaanalysis.rma import rma

# --------------------------------------------------------------------------------------------
# random dependent data


def dependent_data(seed: int, n_studies: int = 14, rho: float = 0.0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, size=n_studies)
    sizes[0] = 3  # at least one study with several estimates
    study = np.repeat([f"S{j:02d}" for j in range(n_studies)], sizes)
    k = study.size
    es_id = np.concatenate([np.arange(1, s + 1) for s in sizes])
    vi = rng.uniform(0.01, 0.2, size=k)
    u_study = np.repeat(rng.normal(0, math.sqrt(0.06), size=n_studies), sizes)
    u_es = rng.normal(0, math.sqrt(0.03), size=k)
    x = rng.normal(size=k)
    group = rng.choice(["a", "b", "c"], size=k)
    yi = 0.3 + 0.2 * x + u_study + u_es + rng.normal(size=k) * np.sqrt(vi)
    # shuffle so that a study's rows are not contiguous: the engine must not rely on order
    perm = rng.permutation(k)
    return {
        "yi": yi[perm],
        "vi": vi[perm],
        "study": list(study[perm]),
        "es_id": list(es_id[perm]),
        "x": x[perm],
        "group": group[perm],
    }


def mods_matrix(d, with_group: bool = True) -> np.ndarray:
    cols = [d["x"]]
    if with_group:
        cols += [(d["group"] == "b").astype(float), (d["group"] == "c").astype(float)]
    return np.column_stack(cols)


# --------------------------------------------------------------------------------------------
# the dense oracle


def dense_V(vi, study, rho):
    s = np.array(study, dtype=object)
    same = s[:, None] == s[None, :]
    sd = np.sqrt(vi)
    V = np.where(same, rho * np.outer(sd, sd), 0.0)
    np.fill_diagonal(V, vi)
    return V


def dense_D(study, es_id):
    s = np.array(study, dtype=object)
    e = np.array([f"{a}|{b}" for a, b in zip(study, es_id, strict=True)], dtype=object)
    return (s[:, None] == s[None, :]).astype(float), (e[:, None] == e[None, :]).astype(float)


def dense_ll(theta, y, X, V, D1, D2, method):
    M = V + theta[0] * D1 + theta[1] * D2
    W = np.linalg.inv(M)
    k, p = X.shape
    xtwx = X.T @ W @ X
    b = np.linalg.solve(xtwx, X.T @ W @ y)
    r = y - X @ b
    ll = -0.5 * np.linalg.slogdet(M)[1] - 0.5 * r @ W @ r
    if method == "REML":
        return (
            ll
            - 0.5 * (k - p) * math.log(2 * math.pi)
            + 0.5 * np.linalg.slogdet(X.T @ X)[1]
            - 0.5 * np.linalg.slogdet(xtwx)[1]
        )
    return ll - 0.5 * k * math.log(2 * math.pi)


def dense_optimum(y, X, V, D1, D2, method):
    best = None
    for start in ([0.05, 0.05], [0.2, 0.01], [0.01, 0.2]):
        res = optimize.minimize(
            lambda t: -dense_ll(t, y, X, V, D1, D2, method),
            start,
            method="L-BFGS-B",
            bounds=[(0, None), (0, None)],
            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return best.x, -best.fun


# --------------------------------------------------------------------------------------------
# the fit


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("rho", [0.0, 0.6])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fit_is_the_dense_likelihood_optimum(seed, rho, method):
    d = dependent_data(seed)
    k = len(d["yi"])
    X = np.column_stack([np.ones(k), mods_matrix(d)])
    fit = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"], X=X, method=method, rho=rho)
    V = dense_V(d["vi"], d["study"], rho)
    D1, D2 = dense_D(d["study"], d["es_id"])
    # the engine's optimum is at least as high as a dense optimiser's, and is a stationary point
    _, ll_dense = dense_optimum(d["yi"], X, V, D1, D2, method)
    ll_engine = dense_ll(fit.sigma2, d["yi"], X, V, D1, D2, method)
    assert ll_engine >= ll_dense - 1e-9
    assert fit.loglik == pytest.approx(ll_engine, rel=1e-12)
    for a in range(2):
        if fit.sigma2[a] > 1e-4:
            h = 1e-6
            e = np.zeros(2)
            e[a] = h
            grad = (
                dense_ll(fit.sigma2 + e, d["yi"], X, V, D1, D2, method)
                - dense_ll(fit.sigma2 - e, d["yi"], X, V, D1, D2, method)
            ) / (2 * h)
            assert abs(grad) < 1e-5
    # fixed effects: generalised least squares at the estimated components
    M = V + fit.sigma2[0] * D1 + fit.sigma2[1] * D2
    W = np.linalg.inv(M)
    vb = np.linalg.inv(X.T @ W @ X)
    beta = vb @ X.T @ W @ d["yi"]
    np.testing.assert_allclose(fit.beta, beta, rtol=1e-10)
    np.testing.assert_allclose(fit.se, np.sqrt(np.diag(vb)), rtol=1e-10)
    np.testing.assert_allclose(fit.pval, 2 * stats.norm.sf(np.abs(beta / np.sqrt(np.diag(vb)))), rtol=1e-8)
    # QE with the sampling covariance alone, QM of the non-intercept coefficients
    Vi = np.linalg.inv(V)
    b0 = np.linalg.solve(X.T @ Vi @ X, X.T @ Vi @ d["yi"])
    r0 = d["yi"] - X @ b0
    assert pytest.approx(r0 @ Vi @ r0, rel=1e-10) == fit.QE
    b2 = beta[1:]
    assert pytest.approx(b2 @ np.linalg.solve(vb[1:, 1:], b2), rel=1e-8) == fit.QM
    assert fit.QMdf == (3, None)
    # fit statistics from the dense log-likelihood
    p = X.shape[1]
    parms = p + 2
    assert pytest.approx(-2 * ll_engine + 2 * parms, rel=1e-10) == fit.AIC
    n_eff = k - p if method == "REML" else k
    assert pytest.approx(-2 * ll_engine + parms * math.log(n_eff), rel=1e-10) == fit.BIC
    if method == "ML":
        ll_sat = -0.5 * k * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(V)[1]
        assert fit.deviance == pytest.approx(-2 * (ll_engine - ll_sat), rel=1e-10)
    # studies and (study, estimate) pairs
    assert fit.s_nlevels == (len(set(d["study"])), k)


@pytest.mark.parametrize("rho", [0.0, 0.6])
def test_multilevel_i2_is_the_metafor_faq_definition(rho):
    d = dependent_data(7)
    k = len(d["yi"])
    fit = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"], rho=rho)
    W = np.linalg.inv(dense_V(d["vi"], d["study"], rho))
    X = np.ones((k, 1))
    P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W
    typical = (k - 1) / np.trace(P)
    total = fit.sigma2.sum()
    np.testing.assert_allclose(fit.I2, 100 * fit.sigma2 / (total + typical), rtol=1e-10)
    assert fit.I2_total == pytest.approx(100 * total / (total + typical), rel=1e-10)


def test_t_test_uses_k_minus_p_df_and_f_for_the_moderators():
    d = dependent_data(4)
    k = len(d["yi"])
    X = np.column_stack([np.ones(k), mods_matrix(d, with_group=False)])
    z = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"], X=X, test="z")
    t = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"], X=X, test="t")
    np.testing.assert_allclose(t.beta, z.beta)
    crit = stats.t.ppf(0.975, k - 2)
    np.testing.assert_allclose(t.ci_ub, t.beta + crit * t.se, rtol=1e-10)
    assert t.QMdf == (1, k - 2)
    assert t.QMp == pytest.approx(stats.f.sf(z.QM, 1, k - 2), rel=1e-10)
    assert t.to_dict()["dfs"] == [k - 2, k - 2]


def test_rows_order_does_not_matter():
    d = dependent_data(5)
    a = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"])
    perm = np.random.default_rng(0).permutation(len(d["yi"]))
    b = rma_mv(d["yi"][perm], d["vi"][perm], [d["study"][i] for i in perm], [d["es_id"][i] for i in perm])
    np.testing.assert_allclose(a.sigma2, b.sigma2, rtol=1e-9)
    np.testing.assert_allclose(a.beta, b.beta, rtol=1e-10)


def test_one_estimate_per_study_is_said_to_be_unidentified():
    rng = np.random.default_rng(3)
    yi, vi = rng.normal(size=12), rng.uniform(0.05, 0.1, size=12)
    fit = rma_mv(yi, vi, [f"s{i}" for i in range(12)])
    assert any("cannot be told apart" in n for n in fit.notes)
    # only the sum is identified: it equals the one-level REML tau²
    assert fit.sigma2.sum() == pytest.approx(rma(yi, vi, method="REML").tau2, rel=1e-6)


def test_bad_input_is_refused_with_a_reason():
    d = dependent_data(1)
    with pytest.raises(InvalidInputError, match="ML or REML"):
        rma_mv(d["yi"], d["vi"], d["study"], method="DL")
    with pytest.raises(InvalidInputError, match="rho"):
        rma_mv(d["yi"], d["vi"], d["study"], rho=1.0)
    k = len(d["yi"])
    X = np.column_stack([np.ones(k), d["x"], 2 * d["x"]])
    with pytest.raises(EngineError, match="collinear"):
        rma_mv(d["yi"], d["vi"], d["study"], X=X)
    with pytest.raises(EngineError, match="cannot fit"):
        rma_mv(d["yi"][:1], d["vi"][:1], d["study"][:1])


# --------------------------------------------------------------------------------------------
# profile-likelihood intervals


def test_profile_bounds_are_where_the_likelihood_ratio_reaches_the_quantile():
    d = dependent_data(11, n_studies=18)
    fit = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"])
    ci = profile_confint(fit)
    k = len(d["yi"])
    X = np.ones((k, 1))
    V = dense_V(d["vi"], d["study"], 0.0)
    D1, D2 = dense_D(d["study"], d["es_id"])
    crit = stats.chi2.ppf(0.95, 1)
    for j, (est, lo, hi) in enumerate(ci.sigma2):
        assert est == pytest.approx(fit.sigma2[j])
        for bound in (lo, hi):
            if bound == 0.0:
                continue
            # re-maximise the other component with the dense likelihood
            other = 1 - j

            def profile(t, bound=bound, j=j, other=other):
                theta = np.zeros(2)
                theta[j] = bound
                theta[other] = t
                return -dense_ll(theta, d["yi"], X, V, D1, D2, "REML")

            res = optimize.minimize_scalar(
                profile, bounds=(0, 10), method="bounded", options={"xatol": 1e-12}
            )
            assert -2 * (-res.fun - fit.loglik) == pytest.approx(crit, abs=1e-6)
        assert ci.sigma[j] == pytest.approx([math.sqrt(v) for v in ci.sigma2[j]])


# --------------------------------------------------------------------------------------------
# cluster-robust inference


def dense_robust(y, X, M, study, kind):
    """CR1/CR2 written from the definitions with explicit per-cluster matrices and double loops."""
    W = np.linalg.inv(M)
    B = np.linalg.inv(X.T @ W @ X)
    beta = B @ X.T @ W @ y
    e = y - X @ beta
    s = np.array(study, dtype=object)
    clusters = list(dict.fromkeys(study))
    n, p = len(clusters), X.shape[1]
    idx = [np.flatnonzero(s == c) for c in clusters]
    if kind == "CR1":
        meat = sum(X[i].T @ W[np.ix_(i, i)] @ np.outer(e[i], e[i]) @ W[np.ix_(i, i)] @ X[i] for i in idx)
        vb = n / (n - p) * B @ meat @ B
        return beta, vb, np.full(p, n - p), None
    A, U = [], []
    for i in idx:
        Mj = M[np.ix_(i, i)]
        Uj = linalg.cholesky(Mj, lower=False)  # U'U = M_j
        Q = Uj @ (Mj - X[i] @ B @ X[i].T) @ Uj.T
        lam, vec = np.linalg.eigh(Q)
        inv = np.array([1 / math.sqrt(v) if v > 1e-12 else 0.0 for v in lam])
        A.append(Uj.T @ vec @ np.diag(inv) @ vec.T @ Uj)
        U.append(Uj)
    Wj = [W[np.ix_(i, i)] for i in idx]
    meat = sum(X[i].T @ Wj[j] @ A[j] @ np.outer(e[i], e[i]) @ A[j] @ Wj[j] @ X[i] for j, i in enumerate(idx))
    vb = B @ meat @ B
    LB = np.linalg.cholesky(B)

    def g(j, c):
        return c @ B @ X[idx[j]].T @ Wj[j] @ A[j] @ U[j].T

    def h(j, c):
        return c @ B @ X[idx[j]].T @ Wj[j] @ A[j] @ X[idx[j]] @ LB

    def P(j, m, c, c2):
        return (g(j, c) @ g(j, c2) if j == m else 0.0) - h(j, c) @ h(m, c2)

    dfs = []
    for i in range(p):
        c = np.eye(p)[i]
        num = sum(P(j, j, c, c) for j in range(n)) ** 2
        den = sum(P(j, m, c, c) ** 2 for j in range(n) for m in range(n))
        dfs.append(num / den)
    if p == 1:
        return beta, vb, np.array(dfs), None
    # HTZ for the non-intercept coefficients
    C = np.eye(p)[1:]
    q = C.shape[0]
    omega = np.array([[sum(P(j, j, C[a], C[b]) for j in range(n)) for b in range(q)] for a in range(q)])
    lam, vec = np.linalg.eigh(omega)
    om_half = vec @ np.diag(lam**-0.5) @ vec.T
    total = 0.0
    for j in range(n):
        for m in range(n):
            Pjm = np.array([[P(j, m, C[a], C[b]) for b in range(q)] for a in range(q)])
            Bjm = om_half @ Pjm @ om_half
            total += sum(Bjm[a, b] * Bjm[b, a] + Bjm[a, a] * Bjm[b, b] for a in range(q) for b in range(q))
    nu = q * (q + 1) / total
    return beta, vb, np.array(dfs), nu


@pytest.mark.parametrize("rho", [0.0, 0.5])
@pytest.mark.parametrize("kind", ["CR1", "CR2"])
def test_robust_matches_the_dense_definition(kind, rho):
    d = dependent_data(21, n_studies=10, rho=rho)
    k = len(d["yi"])
    X = np.column_stack([np.ones(k), mods_matrix(d, with_group=False), (d["group"] == "b").astype(float)])
    fit = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"], X=X, rho=rho)
    res = robust(fit, kind)
    V = dense_V(d["vi"], d["study"], rho)
    D1, D2 = dense_D(d["study"], d["es_id"])
    M = V + fit.sigma2[0] * D1 + fit.sigma2[1] * D2
    beta, vb, dfs, nu = dense_robust(d["yi"], X, M, d["study"], kind)
    np.testing.assert_allclose(res.beta, beta, rtol=1e-9)
    np.testing.assert_allclose(res.vb, vb, rtol=1e-8)
    np.testing.assert_allclose(res.dfs, dfs, rtol=1e-8)
    np.testing.assert_allclose(res.pval, 2 * stats.t.sf(np.abs(beta / np.sqrt(np.diag(vb))), dfs), rtol=1e-7)
    m = X.shape[1] - 1
    Q = beta[1:] @ np.linalg.solve(vb[1:, 1:], beta[1:])
    if kind == "CR1":
        assert pytest.approx(Q / m, rel=1e-8) == res.QM
        assert res.QMdf == (m, 10 - X.shape[1])
    else:
        assert res.QMdf[1] == pytest.approx(nu - m + 1, rel=1e-8)
        assert pytest.approx((nu - m + 1) / (nu * m) * Q, rel=1e-8) == res.QM


def test_robust_on_an_rma_fit_uses_the_diagonal_working_model():
    d = dependent_data(8)
    fit = rma(d["yi"], d["vi"], method="REML")
    res = robust(working_model_of_rma(fit, d["study"]), "CR2")
    M = np.diag(d["vi"] + fit.tau2)
    _, vb, dfs, _ = dense_robust(d["yi"], np.ones((len(d["yi"]), 1)), M, d["study"], "CR2")
    np.testing.assert_allclose(res.vb, vb, rtol=1e-8)
    np.testing.assert_allclose(res.dfs, dfs, rtol=1e-8)
    assert res.n_clusters == len(set(d["study"]))


def test_robust_needs_more_clusters_than_coefficients():
    d = dependent_data(2, n_studies=3)
    k = len(d["yi"])
    X = np.column_stack([np.ones(k), d["x"], d["x"] ** 2])
    fit = rma_mv(d["yi"], d["vi"], d["study"], d["es_id"], X=X)
    with pytest.raises(EngineError, match="more clusters"):
        robust(fit, "CR2")


# --------------------------------------------------------------------------------------------
# aggregation


def test_aggregate_is_gls_within_each_study():
    d = dependent_data(9)
    yi = d["yi"].copy()
    yi[3] = np.nan  # dropped before aggregating
    agg = aggregate(yi, d["vi"], d["study"], 0.6)
    V = dense_V(d["vi"], d["study"], 0.6)
    order = list(dict.fromkeys(s for s, y in zip(d["study"], yi, strict=True) if np.isfinite(y)))
    assert list(agg.study) == order
    for j, s in enumerate(order):
        i = np.flatnonzero((np.array(d["study"]) == s) & np.isfinite(yi))
        W = np.linalg.inv(V[np.ix_(i, i)])
        one = np.ones(i.size)
        assert agg.yi[j] == pytest.approx(one @ W @ yi[i] / (one @ W @ one), rel=1e-12)
        assert agg.vi[j] == pytest.approx(1 / (one @ W @ one), rel=1e-12)
        assert agg.ki[j] == i.size
        assert sorted(agg.members[j].tolist()) == i.tolist()
