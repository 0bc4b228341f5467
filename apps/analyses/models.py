"""Analyses (the steering group's specifications), their immutable results, and the outbox."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from apps.consortium.models import Outcome
from workers.metaanalysis.analysis import AnalysisSpec, spec_hash


class AnalysisQuerySet(models.QuerySet["Analysis"]):
    def visible_to(self, user: Any) -> AnalysisQuerySet:
        """Analyses are visible to every signed-in person; their results are filtered separately."""
        if not (user.is_authenticated and user.is_active):
            return self.none()
        return self.all()


class Analysis(models.Model):
    """A specification over an outcome: estimator, test, moderators, subgroup, sensitivity analyses.

    ``requested_seq`` is bumped (in the same transaction) by every data change that affects the
    analysis; ``computed_seq`` is the request the stored current result answers. The analysis is
    current when they are equal.
    """

    class Method(models.TextChoices):
        EE = "EE", "Equal effects"
        DL = "DL", "DerSimonian-Laird"
        HE = "HE", "Hedges"
        HS = "HS", "Hunter-Schmidt"
        SJ = "SJ", "Sidik-Jonkman"
        ML = "ML", "Maximum likelihood"
        REML = "REML", "Restricted maximum likelihood"
        EB = "EB", "Empirical Bayes"
        PM = "PM", "Paule-Mandel"

    class Test(models.TextChoices):
        Z = "z", "z test"
        KNHA = "knha", "Knapp-Hartung"
        T = "t", "t test (k - p df)"

    # choices, one per line like Method's: the stored code beside the label the admin shows
    class Dependence(models.TextChoices):
        AUTO = "auto", "Automatic: CHE with robust tests where a study has several rows"
        NONE = "none", "None: one row per study"
        AGGREGATE = "aggregate", "Aggregate each study's rows (rho)"
        MULTILEVEL = "multilevel", "Three-level model"
        CHE = "che", "Correlated and hierarchical effects (rho)"

    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="analyses")
    name = models.CharField(max_length=200)
    is_default = models.BooleanField(default=False)
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.REML)
    test = models.CharField(max_length=4, choices=Test.choices, default=Test.Z)
    level = models.FloatField(default=95.0)
    mods = models.JSONField(default=list, blank=True)
    subgroup = models.CharField(max_length=100, blank=True)
    cumulative_order = models.CharField(max_length=100, blank=True, default="year")
    sensitivity = models.BooleanField(default=True)
    bias = models.BooleanField(default=True)
    dependence = models.CharField(max_length=10, choices=Dependence.choices, default=Dependence.AUTO)
    rho = models.FloatField(default=0.6, help_text="Assumed correlation of a study's sampling errors.")
    robust = models.BooleanField(
        default=True, help_text="Cluster-robust (CR2) tests where studies have several rows."
    )
    timepoint = models.CharField(
        max_length=100, blank=True, help_text='Rows that enter: a time point, "latest", or empty for all.'
    )
    instruments = models.JSONField(
        default=list, blank=True, help_text="Preferred instruments, first choice first; empty keeps all."
    )
    requested_seq = models.BigIntegerField(default=0)
    computed_seq = models.BigIntegerField(default=0)
    running_since = models.DateTimeField(null=True, blank=True)
    current_result = models.ForeignKey(
        "AnalysisResult", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AnalysisQuerySet.as_manager()

    class Meta:
        ordering = ["outcome__code", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["outcome"],
                condition=models.Q(is_default=True),
                name="one_default_analysis_per_outcome",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.outcome.code}: {self.name}"

    def spec(self) -> dict[str, Any]:
        """The specification under the engine's names (the form stored with each result)."""
        return {
            "measure": self.outcome.measure,
            "method": self.method,
            "test": self.test,
            "level": float(self.level),
            "mods": list(self.mods),
            "subgroup": self.subgroup or None,
            "cumulative_order": self.cumulative_order or None,
            "sensitivity": self.sensitivity,
            "bias": self.bias,
            "dependence": self.dependence,
            "rho": float(self.rho),
            "robust": self.robust,
            "timepoint": self.timepoint or None,
            "timepoints": list(self.outcome.timepoints or ()),
            "instruments": list(self.instruments),
        }

    def engine_spec(self) -> AnalysisSpec:
        """The engine's validated specification; raises ``EngineError`` if a field is out of range."""
        return AnalysisSpec.from_dict(self.spec())

    def spec_hash(self) -> str:
        """The engine's hash of :meth:`spec`. Results stored before it was the engine's keep theirs."""
        return spec_hash(self.spec())

    @property
    def state(self) -> str:
        """current, queued or running. A computation silent for longer than the stale lease (its
        worker died) counts as queued again: the redelivered task or the sweep will take it."""
        from datetime import timedelta

        from django.conf import settings
        from django.utils import timezone

        lease = timedelta(seconds=settings.RECOMPUTE_STALE_AFTER_SECONDS)
        if self.running_since is not None and self.running_since > timezone.now() - lease:
            return "running"
        if self.requested_seq > self.computed_seq:
            return "queued"
        return "current"


class AnalysisResultQuerySet(models.QuerySet["AnalysisResult"]):
    def visible_to(self, user: Any) -> AnalysisResultQuerySet:
        """Steering group and administrators see every result; everyone else, released ones only."""
        from apps.consortium import roles

        if not (user.is_authenticated and user.is_active):
            return self.none()
        if roles.reads_unreleased_results(user):
            return self.all()
        return self.filter(released=True)


class AnalysisResult(models.Model):
    """An immutable snapshot: the engine's output and exactly what produced it.

    ``dataset_versions`` lists every input version (dataset, centre, version id, number, checksum);
    ``input_fingerprint`` hashes that list with the specification hash.
    """

    class Status(models.TextChoices):
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    analysis = models.ForeignKey(Analysis, on_delete=models.PROTECT, related_name="results")
    seq = models.BigIntegerField(help_text="The request sequence number this result answers.")
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.JSONField(null=True, blank=True)
    blocks = models.JSONField(default=dict)
    notes = models.JSONField(default=list)
    omitted = models.JSONField(default=list)
    studies = models.JSONField(default=list, help_text="Study label of each input row, in input order.")
    k = models.IntegerField(null=True)
    spec = models.JSONField()
    spec_hash = models.CharField(max_length=64)
    engine_version = models.CharField(max_length=20)
    dataset_versions = models.JSONField(default=list)
    input_fingerprint = models.CharField(max_length=64, db_index=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    compute_ms = models.FloatField()
    released = models.BooleanField(default=False)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AnalysisResultQuerySet.as_manager()

    class Meta:
        ordering = ["analysis", "-seq", "-id"]
        constraints = [models.UniqueConstraint(fields=["analysis", "seq"], name="one_result_per_request")]

    def __str__(self) -> str:
        return f"{self.analysis} #{self.seq} ({self.status})"

    @property
    def pooled(self) -> dict[str, Any] | None:
        """The headline numbers for dashboards (see :func:`pooled_of`)."""
        return pooled_of(self.blocks)


def pooled_of(blocks: dict[str, Any]) -> dict[str, Any] | None:
    """The headline of a result's blocks: estimate, CI, PI, heterogeneity, k, and the model they come
    from (the engine's ``summary`` block; results stored before it had one are read from their
    ``fit`` and ``predict``). None when no model was fitted."""
    summary = blocks.get("summary")
    if summary:
        return dict(summary)
    fit = blocks.get("fit")
    if not fit:
        return None
    pred = blocks.get("predict") or {}

    def first(value: Any) -> Any:
        return value[0] if isinstance(value, list) else value

    return {
        "estimate": first(fit.get("beta")),
        "se": first(fit.get("se")),
        "ci_lb": first(fit.get("ci_lb")),
        "ci_ub": first(fit.get("ci_ub")),
        "pval": first(fit.get("pval")),
        "pi_lb": pred.get("pi_lb"),
        "pi_ub": pred.get("pi_ub"),
        "tau2": fit.get("tau2"),
        "I2": fit.get("I2"),
        "QE": fit.get("QE"),
        "QEp": fit.get("QEp"),
        "k": fit.get("k"),
    }


class OutboxEvent(models.Model):
    """A recompute request written in the same transaction as the data change that caused it.

    The relay publishes pending events to the broker and marks them sent; events it could not
    publish stay pending and are retried with backoff, so a broker outage delays but never drops.
    """

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="outbox_events")
    seq = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["published_at", "next_attempt_at"], name="outbox_pending")]

    def __str__(self) -> str:
        return f"recompute {self.analysis_id} #{self.seq}"
