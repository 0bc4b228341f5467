"""Analyses (the steering group's specifications), their immutable results, the releases that
publish them, and the outbox."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from apps.analyses import visibility
from apps.common.models import WriteOnce
from apps.consortium.models import Outcome
from workers.metaanalysis.spec import SETTINGS, AnalysisSpec, spec_hash


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

    @property
    def is_regression(self) -> bool:
        """A meta-regression (it has moderators): its headline is the intercept, the effect where
        every moderator is 0, never a pooled effect."""
        return bool(self.mods)

    def spec(self) -> dict[str, Any]:
        """The specification under the engine's names (the form stored with each result). The
        instruments whose effects are sign-aligned come from the data dictionary
        (``Outcome.reversed_instruments``), and only when there are any."""
        reverse = self.outcome.reversed_instruments()
        return {
            **self._spec_fields(),
            **({"reverse_instruments": reverse} if reverse else {}),
        }

    def _spec_fields(self) -> dict[str, Any]:
        """The outcome's measure and time points, and each of the engine's settings
        (``spec.SETTINGS``) from the field of that name: a blank column is None, a number a float."""
        settings = {name: _engine_value(getattr(self, name)) for name in SETTINGS}
        return {
            "measure": self.outcome.measure,
            **settings,
            "timepoints": list(self.outcome.timepoints or ()),
        }

    def engine_spec(self) -> AnalysisSpec:
        """The engine's validated specification; raises ``EngineError`` if a field is out of range."""
        return AnalysisSpec.from_dict(self.spec())

    def spec_hash(self) -> str:
        """The engine's hash of :meth:`spec`. Results stored before it was the engine's keep theirs."""
        return spec_hash(self.spec())

    #: What :attr:`state` may read, and what each means (docs/api.md repeats it for API clients).
    STATES = {
        "running": "a worker is recomputing it",
        "queued": "data or settings changed; a recompute waits for a worker",
        "current": "up to date: its current result has an estimate",
        "failed": "up to date, but its current result has no estimate (the result's error says why)",
        "waiting": "up to date, but no centre has submitted data for its outcome yet",
    }

    @property
    def progress(self) -> str:
        """running, queued or current (up to date, whatever its result): the part of :attr:`state`
        that says nothing about the result itself, for readers who may not see it. A computation
        silent for longer than the stale lease (its worker died) counts as queued again: the
        redelivered task or the sweep will take it."""
        from datetime import timedelta

        lease = timedelta(seconds=settings.RECOMPUTE_STALE_AFTER_SECONDS)
        if self.running_since is not None and self.running_since > timezone.now() - lease:
            return "running"
        if self.requested_seq > self.computed_seq:
            return "queued"
        return "current"

    @property
    def state(self) -> str:
        """One of :attr:`STATES`: :attr:`progress`, and once up to date what its current result
        is. Reads the current result's status (select_related("current_result") saves a query)."""
        progress = self.progress
        if progress != "current":
            return progress
        if self.current_result_id is None:
            return "waiting"
        status = self.current_result.status if self.current_result else AnalysisResult.Status.DONE
        if status == AnalysisResult.Status.EMPTY:
            return "waiting"
        if status == AnalysisResult.Status.FAILED:
            return "failed"
        return "current"


def _engine_value(value: Any) -> Any:
    if value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return list(value) if isinstance(value, list | tuple) else value


class AnalysisResultQuerySet(models.QuerySet["AnalysisResult"]):
    def visible_to(self, user: Any, at: Any = None) -> AnalysisResultQuerySet:
        """The results ``user`` may see (``apps.analyses.visibility``); with ``at``, those they
        could see at that moment (stored by then, released by then)."""
        reader = visibility.reader_of(user)
        if reader is visibility.Reader.NOTHING:
            return self.none()
        if reader is visibility.Reader.EVERYTHING:
            return self.all() if at is None else self.filter(created_at__lte=at)
        return self.released(at)

    def released(self, at: Any = None) -> AnalysisResultQuerySet:
        """Results in at least one release readable ``at`` (now by default). ``Exists`` rather than
        a join: a result frozen by two releases is one row, and the filter composes with others."""
        return self.filter(
            Exists(
                ReleaseResult.objects.filter(
                    visibility.release_readable(at, prefix="release__"), result=OuterRef("pk")
                )
            )
        )


class AnalysisResult(models.Model):
    """An immutable snapshot: the engine's output and exactly what produced it.

    ``dataset_versions`` lists every input version (dataset, centre, version id, number, checksum);
    ``input_fingerprint`` hashes that list with the specification hash.
    """

    class Status(models.TextChoices):
        """``done``: a model was fitted and the result has a pooled estimate (or, for a
        meta-regression, its coefficients). ``failed``: no estimate, and ``error.message`` says why
        in words (the engine refused the data or the settings, no row entered the model, the model
        could not be fitted). ``empty``: no centre has submitted data yet (waiting for data).
        Only ``done`` results are shown as numbers, frozen in releases or announced as estimates."""

        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        EMPTY = "empty", "Waiting for data"

    analysis = models.ForeignKey(Analysis, on_delete=models.PROTECT, related_name="results")
    seq = models.BigIntegerField(help_text="The request sequence number this result answers.")
    status = models.CharField(max_length=10, choices=Status.choices)
    error = models.JSONField(null=True, blank=True)
    blocks = models.JSONField(default=dict)
    notes = models.JSONField(default=list)
    omitted = models.JSONField(default=list)
    studies = models.JSONField(default=list, help_text="Study label of each input row, in input order.")
    labels = models.JSONField(
        default=dict,
        blank=True,
        help_text="What was analysed, as it was named when the result was computed (outcome, measure, "
        "direction, time point, instruments): a result is read with these, never with today's names.",
    )
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
    # What the API serves, rendered once when the result is stored (``apps.api.documents``):
    # a result never changes, so reads send these bytes as they are, with ``etag`` as their ETag.
    summary_json = models.TextField(blank=True, editable=False)
    detail_json = models.TextField(blank=True, editable=False)
    etag = models.CharField(max_length=64, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AnalysisResultQuerySet.as_manager()

    class Meta:
        # by the column, not through the analysis's own ordering: that would join the analyses and
        # their outcomes into every read of results, subqueries included
        ordering = ["analysis_id", "-seq", "-id"]
        constraints = [models.UniqueConstraint(fields=["analysis", "seq"], name="one_result_per_request")]

    def __str__(self) -> str:
        return f"{self.analysis} #{self.seq} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Store the row in a transaction of its own (or the caller's), so that what the receivers
        of its ``post_save`` write commits with it: the API app renders the result's documents
        there (``apps.api.documents``), and no reader sees the row without them."""
        with transaction.atomic():
            super().save(*args, **kwargs)

    @property
    def is_regression(self) -> bool:
        """Computed as a meta-regression (``Analysis.is_regression``, by the stored specification)."""
        return bool((self.spec or {}).get("mods"))

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


class ReleaseQuerySet(models.QuerySet["Release"]):
    def readable(self, at: Any = None) -> ReleaseQuerySet:
        """Releases members and API clients may read ``at`` (now by default)."""
        return self.filter(visibility.release_readable(at))

    def visible_to(self, user: Any, at: Any = None) -> ReleaseQuerySet:
        """The releases ``user`` may see (``apps.analyses.visibility``); the steering group and
        administrators see every release, embargoed ones too. With ``at``: as they could then."""
        reader = visibility.reader_of(user)
        if reader is visibility.Reader.NOTHING:
            return self.none()
        if reader is visibility.Reader.EVERYTHING:
            return self.all() if at is None else self.filter(published_at__lte=at)
        return self.readable(at)


class Release(WriteOnce, models.Model):
    """A named, published set of results, one per analysis, frozen when it is published.

    Never changed or deleted (``WriteOnce``): a guideline that cites "release 2026.1" cites the
    same numbers forever. ``announced_at`` is the one column written later, by a guarded
    ``UPDATE`` (``releases_announce``): when the release became readable to members and its
    webhooks were recorded.
    """

    write_once_message = "A release is never changed or deleted; publish a new one."

    name = models.CharField(max_length=40, unique=True)
    notes = models.TextField(blank=True)
    embargo_until = models.DateTimeField(
        null=True, blank=True, help_text="Members and API clients read the release from then on."
    )
    published_at = models.DateTimeField(default=timezone.now)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    announced_at = models.DateTimeField(null=True, blank=True, editable=False)
    results = models.ManyToManyField(AnalysisResult, through="ReleaseResult", related_name="releases")

    objects = ReleaseQuerySet.as_manager()

    class Meta:
        ordering = ["-published_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_readable(self) -> bool:
        """Whether members and API clients may read it now."""
        return visibility.release_is_readable(self)


class ReleaseResult(WriteOnce, models.Model):
    """One analysis's frozen result in a release."""

    write_once_message = Release.write_once_message

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="entries")
    analysis = models.ForeignKey(Analysis, on_delete=models.PROTECT, related_name="+")
    result = models.ForeignKey(AnalysisResult, on_delete=models.PROTECT, related_name="release_entries")
    note = models.TextField(
        blank=True,
        help_text="Why the release holds this result rather than the analysis's current one, if it does.",
    )

    class Meta:
        ordering = ["release", "analysis"]
        constraints = [
            models.UniqueConstraint(
                fields=["release", "analysis"], name="one_result_per_analysis_per_release"
            )
        ]

    def __str__(self) -> str:
        return f"release {self.release_id}: analysis {self.analysis_id} -> result {self.result_id}"


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
