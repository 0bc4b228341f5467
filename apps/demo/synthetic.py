"""A deterministic, clearly labelled SYNTHETIC consortium shaped like the review in the brief.

Five partner centres, 77 studies and about 5,660 participants reporting on four outcomes of
early-years parent-infant psychotherapy. Every number is simulated from a fixed seed: nothing here is
real data. The true effects and heterogeneity are chosen to look like the field (small-to-moderate
effects, moderate to substantial heterogeneity).

Like real consortium data, a study often reports an outcome more than once: on two instruments,
and at post-treatment and at 6 and 12 months. Those effects are dependent, as the analyses must
know: they share the study's true effect (between-study SD ``tau``), differ by a within-study SD
``WITHIN_SD`` (instrument and time point), decay with time (``DECAY``), and their sampling errors
correlate ``WITHIN_STUDY_RHO`` (the same participants measured again), the assumption the default
correlated-and-hierarchical-effects model makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SEED = 20261125
TIMEPOINTS = ("post", "6m", "12m")
#: The correlation of two sampling errors of one study (same participants, other instrument or
#: time point): the simulation's truth, which the default analysis assumes (rho = 0.6).
WITHIN_STUDY_RHO = 0.6
#: SD of the true effects of one study around the study's effect (instrument, time point).
WITHIN_SD = 0.15
#: The true effect at each time point relative to post-treatment; follow-up loses participants.
DECAY = {"post": 1.0, "6m": 0.85, "12m": 0.7}
RETAINED = {"post": 1.0, "6m": 0.88, "12m": 0.8}
#: Share of a continuous outcome's rows a paper reports only as Cohen's d, or only as a t statistic
#: (with the group sizes): the platform derives Hedges' g from them.
REPORTED_D = 0.10
REPORTED_T = 0.06
#: Share of a continuous outcome's reports on two instruments, and with two or three time points.
TWO_INSTRUMENTS = 0.35
FOLLOW_UPS = (0.5, 0.3, 0.2)  # one, two or three time points
DEMO_PASSWORD = "demo-password"  # noqa: S105 - published demo sign-in, synthetic data only
API_TOKEN = "demo0api0token0synthetic0consortium00001"  # noqa: S105 - 40 characters, demo only

CENTRES = [
    ("north", "Northfield Infant Mental Health Centre (synthetic)", "United Kingdom", 17),
    ("lakes", "Lakeside Family Institute (synthetic)", "Finland", 16),
    ("coast", "Coastal Perinatal Research Unit (synthetic)", "Australia", 15),
    ("valley", "Valley Parent-Infant Clinic (synthetic)", "Canada", 15),
    ("harbour", "Harbour University Child Studies (synthetic)", "Netherlands", 14),
]

MODERATORS = [
    {"name": "intervention", "kind": "categorical"},
    {"name": "setting", "kind": "categorical"},
    {"name": "risk", "kind": "categorical"},
    {"name": "year", "kind": "numeric"},
]


@dataclass(frozen=True)
class DemoOutcome:
    code: str
    name: str
    description: str
    measure: str
    direction: str
    instruments: tuple[str, ...]
    mu: float  # true mean effect (SMD, or log RR)
    tau: float  # between-study SD
    share: float  # share of studies reporting this outcome


@dataclass(frozen=True)
class DemoScale:
    """An instrument's scale as the data dictionary declares it (which end is better, its range)
    and the mean and SD of a typical control group on it, from which the demo's means are drawn."""

    direction: str
    low: float
    high: float
    mean: float
    sd: float

    def entry(self) -> dict[str, Any]:
        return {"direction": self.direction, "min": self.low, "max": self.high}


#: The demo's instruments. Depression scales count symptoms (lower is better, as the outcome);
#: ASQ:SE counts social-emotional problems (lower is better) in an outcome where higher is better,
#: so its effects are sign-aligned before pooling; BITSEA here is its competence scale.
SCALES = {
    "PRFQ": DemoScale("higher", 1, 7, 4.4, 0.9),
    "RFS": DemoScale("higher", -1, 9, 4.0, 1.5),
    "EPDS": DemoScale("lower", 0, 30, 12.0, 5.0),
    "BDI-II": DemoScale("lower", 0, 63, 19.0, 9.0),
    "PHQ-9": DemoScale("lower", 0, 27, 10.0, 5.0),
    "ASQ:SE": DemoScale("lower", 0, 400, 60.0, 30.0),
    "BITSEA": DemoScale("higher", 0, 22, 15.0, 3.0),
}

OUTCOMES = [
    DemoOutcome(
        "reflective-functioning",
        "Parental reflective functioning",
        "The parent's capacity to understand the infant's and their own behaviour in terms of mental states.",
        "SMD",
        "higher",
        ("PRFQ", "RFS"),
        0.32,
        0.22,
        0.55,
    ),
    DemoOutcome(
        "postnatal-depression",
        "Postnatal depression (parent)",
        "Depressive symptoms of the parent after birth; lower scores are better.",
        "SMD",
        "lower",
        ("EPDS", "BDI-II", "PHQ-9"),
        -0.24,
        0.18,
        0.75,
    ),
    DemoOutcome(
        "infant-social-emotional",
        "Infant social-emotional functioning",
        "The infant's social-emotional behaviour and development.",
        "SMD",
        "higher",
        ("ASQ:SE", "BITSEA"),
        0.18,
        0.12,
        0.6,
    ),
    DemoOutcome(
        "secure-attachment",
        "Secure parent-child attachment",
        "Infants classified as securely attached (events) in the Strange Situation Procedure.",
        "RR",
        "higher",
        ("SSP",),
        0.22,
        0.15,
        0.45,
    ),
]

SURNAMES = [
    "Abbott",
    "Berg",
    "Castillo",
    "Dahl",
    "Eriksen",
    "Fischer",
    "Gupta",
    "Hale",
    "Ito",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Silva",
    "Tanaka",
    "Urban",
    "Varga",
    "Weber",
    "Xu",
    "Yilmaz",
    "Zeller",
]
INTERVENTIONS = ["parent-infant psychotherapy", "video feedback", "mentalization-based"]
SETTINGS = ["home", "clinic"]
RISK = ["high", "universal"]


def demo_rows() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Rows per (centre code, outcome code), deterministic for the fixed seed."""
    rng = np.random.default_rng(SEED)
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    study_no = 0
    # Total sample sizes: 77 studies summing to about 5,660 participants.
    sizes = _study_sizes(rng)
    for centre_code, _name, _country, n_studies in CENTRES:
        for _ in range(n_studies):
            n_total = int(sizes[study_no])
            study_no += 1
            year = int(rng.integers(2003, 2025))
            label = f"{SURNAMES[study_no % len(SURNAMES)]} {year} (S{study_no:02d})"
            mods = {
                "intervention": INTERVENTIONS[int(rng.integers(0, 3))],
                "setting": SETTINGS[int(rng.integers(0, 2))],
                "risk": RISK[int(rng.integers(0, 2))],
                "year": year,
            }
            n1 = n_total // 2
            n2 = n_total - n1
            reports = [rng.random() <= o.share for o in OUTCOMES]
            if not any(reports):  # every study contributes to at least one outcome
                reports[int(rng.integers(0, len(OUTCOMES)))] = True
            for outcome, reported in zip(OUTCOMES, reports, strict=True):
                if not reported:
                    continue
                theta = rng.normal(outcome.mu + (0.1 if mods["risk"] == "high" else 0.0), outcome.tau)
                rows = _reports(rng, outcome, theta, n1, n2)
                for row in rows:
                    row.update({"study": label, **mods})
                out.setdefault((centre_code, outcome.code), []).extend(rows)
    return out


def _reports(
    rng: np.random.Generator, outcome: DemoOutcome, theta: float, n1: int, n2: int
) -> list[dict[str, Any]]:
    """One study's rows for one outcome: its instruments at its time points, with dependent errors."""
    if outcome.measure != "SMD":
        # a binary outcome, assessed once (post-treatment) on its one instrument
        p2 = 0.45
        p1 = min(0.95, p2 * float(np.exp(theta)))
        ai = int(rng.binomial(n1, p1))
        ci = int(rng.binomial(n2, p2))
        instrument = outcome.instruments[int(rng.integers(0, len(outcome.instruments)))]
        return [
            {"instrument": instrument, "timepoint": "post", "ai": ai, "bi": n1 - ai, "ci": ci, "di": n2 - ci}
        ]
    n_instruments = 2 if len(outcome.instruments) > 1 and rng.random() < TWO_INSTRUMENTS else 1
    instruments = [
        outcome.instruments[i]
        for i in sorted(rng.choice(len(outcome.instruments), n_instruments, replace=False))
    ]
    n_times = 1 + int(rng.choice(3, p=FOLLOW_UPS))
    cells = [(ins, t) for t in TIMEPOINTS[:n_times] for ins in instruments]
    # correlated standard-normal sampling errors: the same participants answer every instrument
    m = len(cells)
    corr = np.full((m, m), WITHIN_STUDY_RHO) + (1 - WITHIN_STUDY_RHO) * np.eye(m)
    errors = rng.multivariate_normal(np.zeros(m), corr)
    rows = []
    for (instrument, time), error in zip(cells, errors, strict=True):
        a, b = max(4, round(n1 * RETAINED[time])), max(4, round(n2 * RETAINED[time]))
        true = theta * DECAY[time] + rng.normal(0, WITHIN_SD)
        d = true + error * np.sqrt(1 / a + 1 / b)
        scale = SCALES[instrument]
        # the effect on the outcome's direction; on a scale whose better end is the other one, a
        # benefit shows as a change the other way (the platform aligns it back before pooling)
        sign = 1.0 if scale.direction == outcome.direction else -1.0
        sd = scale.sd
        m2 = scale.mean + rng.normal(0, sd / np.sqrt(b))
        m1, sd1 = float(m2 + sign * d * sd), float(sd * np.sqrt(rng.chisquare(a - 1) / (a - 1)))
        sd2 = float(sd * np.sqrt(rng.chisquare(b - 1) / (b - 1)))
        row: dict[str, Any] = {"instrument": instrument, "timepoint": time, "n1i": a, "n2i": b}
        form = rng.random()
        cohen_d = (m1 - m2) / np.sqrt(((a - 1) * sd1**2 + (b - 1) * sd2**2) / (a + b - 2))
        if form < REPORTED_D:
            row["di"] = round(float(cohen_d), 2)
        elif form < REPORTED_D + REPORTED_T:
            row["ti"] = round(float(cohen_d / np.sqrt(1 / a + 1 / b)), 2)
        else:
            row.update(
                {
                    "m1i": round(m1, 2),
                    "sd1i": round(sd1, 2),
                    "m2i": round(float(m2), 2),
                    "sd2i": round(sd2, 2),
                }
            )
        rows.append(row)
    return rows


def vary_row(row: dict[str, Any], up: bool) -> None:
    """Change one demo row a little, but always really (a new version, a new result): its mean, or
    the Cohen's d or t it reports instead, by 0.01; or one event more or fewer. For tests and
    benchmarks that upload many versions of the demo's datasets."""
    if row.get("ai") is not None:
        total = row["ai"] + row["bi"]
        row["ai"] += 1 if row["ai"] < total else -1
        row["bi"] = total - row["ai"]
        return
    # a stored row lists every column of its file, empty (None) where it gives another form
    key = next(k for k in ("m1i", "di", "ti") if row.get(k) is not None)
    row[key] = round(row[key] + (0.01 if up else -0.01), 4)


TARGET_PARTICIPANTS = 5660


def _study_sizes(rng: np.random.Generator) -> np.ndarray:
    """77 total sample sizes (at least 20), skewed like real trials, summing to about 5,660."""
    raw = np.maximum(20.0, rng.gamma(shape=4.0, scale=73.5 / 4.0, size=77))
    return np.maximum(20, np.round(raw * TARGET_PARTICIPANTS / raw.sum())).astype(int)


def demo_participants() -> int:
    return int(_study_sizes(np.random.default_rng(SEED)).sum())
