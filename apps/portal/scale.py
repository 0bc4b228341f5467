"""The estimate on the outcome's own scale: ratio measures are pooled as logs, readers want the
ratio. :class:`Scale` is a measure's axis in the figures; :func:`estimate_of` and :func:`ratio_of`
give a pooled estimate as pages show it; both back-transform with the measure registry's
``back_transform``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from apps.consortium.models import Outcome
from workers.metaanalysis import measures


@dataclass(frozen=True)
class Scale:
    """The axis of a measure: ratio measures are modelled as logs, drawn on a log axis whose ticks
    and text read as ratios."""

    measure: str
    log: bool
    ratio: str | None
    title: str

    @classmethod
    def of(cls, code: str) -> Scale:
        known = measures.REGISTRY.get(code)
        if known is None:
            return cls(code, False, None, code)
        title = known.label[:1].upper() + known.label[1:]
        if known.log_scale and known.ratio_label:
            return cls(code, True, known.ratio_label, title)
        return cls(code, False, None, title)

    def shown(self, v: float) -> float:
        """``v`` as readers read it (a ratio for ratio measures): the registry's back-transformation."""
        known = measures.REGISTRY.get(self.measure)
        return v if known is None else known.back_transform(v)

    def fmt(self, v: float | None, digits: int = 2) -> str:
        if v is None or not math.isfinite(v):
            return "NA"
        return f"{self.shown(v):.{digits}f}"

    def interval(self, est: float | None, lb: float | None, ub: float | None) -> str:
        return f"{self.fmt(est)} ({self.fmt(lb)} to {self.fmt(ub)})"

    @property
    def short(self) -> str:
        return self.ratio or self.measure

    @property
    def axis_label(self) -> str:
        return f"{self.title}, log scale" if self.log else self.title


def ratio_of(code: str, pooled: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ratio measures are pooled on the log scale; readers want the ratio itself as well."""
    measure = measures.REGISTRY.get(code)
    if measure is None or not measure.log_scale or not pooled:
        return None
    values = {k: pooled.get(k) for k in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub")}
    if any(v is None for v in (values["estimate"], values["ci_lb"], values["ci_ub"])):
        return None
    return {
        "label": measure.ratio_label,
        **{k: measure.back_transform(v) if v is not None else None for k, v in values.items()},
    }


def estimate_of(code: str, pooled: dict[str, Any] | None) -> dict[str, Any] | None:
    """The pooled estimate and its intervals as a reader should see them: on the ratio scale for a
    ratio measure (``label`` "RR"), else on the measure's own (``label`` "SMD"). None without one."""
    if not pooled or pooled.get("estimate") is None:
        return None
    ratio = ratio_of(code, pooled)
    if ratio is not None:
        return ratio
    return {"label": code, **{k: pooled.get(k) for k in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub")}}


def measure_title(outcome: Outcome) -> str:
    """The outcome's measure as pages name it: a ratio measure by its ratio, with the scale it is
    pooled on ("Risk ratio (RR), pooled on the log scale"), never as the log it is modelled as."""
    measure = measures.REGISTRY.get(outcome.measure)
    if measure is not None and measure.log_scale and measure.ratio_label:
        return f"{measure.label[:1].upper()}{measure.label[1:]}, pooled on the log scale"
    return outcome.get_measure_display()


def favours(direction: str, pooled: dict[str, Any] | None) -> str:
    """Which arm the confidence interval favours, read with the direction the result was computed
    under (``labels_of(result)["direction"]``; on the scale the model works on, where no effect is
    0), or that it includes no effect."""
    if not pooled or pooled.get("ci_lb") is None or pooled.get("ci_ub") is None:
        return "–"
    if pooled["ci_lb"] <= 0 <= pooled["ci_ub"]:
        return "unclear (the CI includes no effect)"
    higher = pooled["ci_lb"] > 0
    better = higher == (direction == Outcome.Direction.HIGHER_IS_BETTER)
    return "favours intervention" if better else "favours control"


def labels_of(result: Any) -> dict[str, Any]:
    """What a result was computed from, as named then: stored with every result
    (``apps.analyses.services.result_labels``; results older than that were given theirs when the
    platform was upgraded)."""
    return dict(result.labels)


#: How a headline names the model a result's rows were pooled with.
_MODEL_WORDS = {
    "none": "random effects",
    "aggregate": "study rows aggregated",
    "multilevel": "three-level model",
    "che": "CHE",
}
#: How a headline names model-based tests.
_TEST_WORDS = {"z": "z tests", "knha": "Knapp-Hartung tests", "t": "t tests"}


def headline(result: Any) -> dict[str, Any] | None:
    """Everything a reader needs beside a pooled estimate, in one line: the estimate on the
    outcome's own scale with its interval, the time point, the instruments, the model and its
    tests, and how many effects in how many studies; e.g. "SMD -0.24 (95% CI -0.33 to -0.14),
    post, EPDS and BDI, CHE rho = 0.6 (REML) with CR2 tests, 77 effects in 56 studies". None for a
    result without a pooled estimate (a failure, or a meta-regression, whose intercept is none)."""
    pooled = result.pooled
    spec = result.spec or {}
    if pooled is None or spec.get("mods") or pooled.get("estimate") is None:
        return None
    labels = labels_of(result)
    estimate = estimate_of(labels["measure"], pooled)
    if estimate is None:
        return None
    level = level_of(result)
    timepoint = labels.get("timepoint")
    when = str(
        {None: "every time point", "latest": "each study's latest time point"}.get(timepoint, timepoint)
    )
    instruments = labels.get("instruments") or []
    what = " and ".join(
        [", ".join(instruments[:-1]), instruments[-1]] if len(instruments) > 1 else instruments
    )
    dependence = pooled.get("dependence") or "none"
    model = _MODEL_WORDS.get(dependence, dependence)
    if pooled.get("rho") is not None:
        model += f" \u03c1 = {pooled['rho']:g}"
    model += f" ({spec.get('method', 'REML')})"
    tests = (
        "CR2 tests" if pooled.get("inference") == "CR2" else _TEST_WORDS.get(spec.get("test", "z"), "z tests")
    )
    k, studies = pooled.get("k"), pooled.get("n_studies")
    count = f"{k} effects in {studies} studies" if studies and studies != k else f"{k} studies"
    interval = f"{estimate['label']} {_num(estimate['estimate'])} ({level} CI {_num(estimate['ci_lb'])} to {_num(estimate['ci_ub'])})"
    parts = [interval, when, *([what] if what else []), f"{model} with {tests}", count]
    return {
        "estimate": estimate,
        "level": level,
        "timepoint": when,
        "instruments": what,
        "model": model,
        "tests": tests,
        "count": count,
        "text": ", ".join(parts),
    }


def _num(value: float | None) -> str:
    """A number as a headline prints it: two decimals, a real minus sign."""
    if value is None:
        return "–"
    return f"{value:.2f}".replace("-", "\u2212")


def regression_of(result: Any) -> dict[str, Any] | None:
    """A meta-regression's coefficients (intercept and moderators) with their tests, from the block
    the headline inference comes from (CR2 when robust); None for a model without moderators.

    Its headline "estimate" is the intercept, the effect where every moderator is 0: the page must
    not present it as a pooled effect.
    """
    if not result.is_regression:
        return None
    summary = result.blocks.get("summary") or {}
    fit = result.blocks.get(summary.get("fit_block") or "fit") or {}
    names = fit.get("coef_names") or []
    if len(names) < 2:
        return None
    source = result.blocks.get(summary.get("inference_block") or "fit") or fit

    def column(key: str) -> list[Any]:
        values = source.get(key)
        return list(values) if isinstance(values, list) else [None] * len(names)

    rows = [
        {
            "name": "intercept" if name == "intrcpt" else name,
            "estimate": b,
            "se": se,
            "ci_lb": lb,
            "ci_ub": ub,
            "pval": p,
        }
        for name, b, se, lb, ub, p in zip(
            names,
            column("beta"),
            column("se"),
            column("ci_lb"),
            column("ci_ub"),
            column("pval"),
            strict=False,
        )
    ]
    return {
        "rows": rows,
        "moderators": [r["name"] for r in rows[1:]],
        "QM": source.get("QM", fit.get("QM")),
        "QMp": source.get("QMp", fit.get("QMp")),
        "R2": fit.get("R2"),
        "inference": summary.get("inference"),
    }


def level_of(result: Any) -> str:
    """The confidence level the result's intervals were computed at, as a label ("95%")."""
    level = result.spec.get("level") if isinstance(result.spec, dict) else None
    return f"{float(level):g}%" if isinstance(level, int | float) else "95%"
