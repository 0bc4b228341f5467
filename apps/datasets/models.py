"""Study datasets: a centre's rows for one outcome, kept as immutable versions."""

from __future__ import annotations

from typing import Any, TypeVar

from django.conf import settings
from django.db import models

from apps.common.models import WriteOnce
from apps.consortium.models import Centre, Outcome

_Q = TypeVar("_Q", bound=models.QuerySet[Any])


def _readable(queryset: _Q, user: Any, *, centre: str, shared: models.Q) -> _Q:
    """The rows of ``queryset`` that ``user`` may read: none for an anonymous or inactive user,
    all for an administrator, their centres' (``centre`` is the path to a row's centre) and, for
    readers of all submitted data (steering group, API clients with the datasets scope), the
    ``shared`` ones besides."""
    from apps.consortium import roles

    if not (user.is_authenticated and user.is_active):
        return queryset.none()
    if roles.is_administrator(user):
        return queryset.all()
    own = models.Q(**{f"{centre}__in": roles.centres_viewable(user)})
    if roles.reads_all_submitted_data(user):
        return queryset.filter(own | shared)
    return queryset.filter(own)


class DatasetQuerySet(models.QuerySet["Dataset"]):
    def visible_to(self, user: Any) -> DatasetQuerySet:
        """Datasets the user may read: their centres' (drafts too) and, for readers of all
        submitted data, every non-draft one."""
        return _readable(self, user, centre="centre", shared=~models.Q(status=Dataset.Status.DRAFT))

    def changeable_by(self, user: Any) -> DatasetQuerySet:
        from apps.consortium import roles

        return self.filter(centre__in=roles.centres_changeable(user))


class DatasetVersionQuerySet(models.QuerySet["DatasetVersion"]):
    def visible_to(self, user: Any) -> DatasetVersionQuerySet:
        """Versions the user may read: every version of their centres' datasets; of other visible
        datasets, only versions that were submitted. A draft that was replaced before submission
        (its rows, reason and author) stays with its centre."""
        submitted = models.Q(submitted_at__isnull=False) & ~models.Q(dataset__status=Dataset.Status.DRAFT)
        return _readable(self, user, centre="dataset__centre", shared=submitted)


class Study(models.Model):
    """A study a centre contributes; rows refer to it by its label."""

    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="studies")
    label = models.CharField(max_length=200)
    year = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["centre", "label"]
        constraints = [
            models.UniqueConstraint(fields=["centre", "label"], name="unique_study_label_per_centre")
        ]

    def __str__(self) -> str:
        return self.label


class Dataset(models.Model):
    """A centre's rows for one outcome, with a lifecycle.

    draft: only the centre sees it and it is not analysed; submitted: it enters the consortium's
    analyses; withdrawn: kept, no longer analysed.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        WITHDRAWN = "withdrawn", "Withdrawn"

    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="datasets")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="datasets")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    current_version = models.ForeignKey(
        "DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The version the consortium's analyses use while the dataset is submitted: the newest one that
    # was submitted. A version stored after it (a revision: a correction in progress) stays with
    # the centre and out of the analyses until the centre submits it, which moves this forward.
    submitted_version = models.ForeignKey(
        "DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DatasetQuerySet.as_manager()
    # The version a given reader sees as current (selectors.with_shown_versions sets it).
    shown_version: DatasetVersion | None

    class Meta:
        ordering = ["outcome__code", "centre__code"]
        constraints = [
            models.UniqueConstraint(fields=["centre", "outcome"], name="one_dataset_per_centre_outcome")
        ]

    def __str__(self) -> str:
        return f"{self.centre.code} / {self.outcome.code}"

    @property
    def revision_pending(self) -> bool:
        """A submitted dataset whose current version is not yet the one analysed."""
        return (
            self.status == Dataset.Status.SUBMITTED
            and self.current_version_id is not None
            and self.current_version_id != self.submitted_version_id
        )


class DatasetVersion(WriteOnce, models.Model):
    """An immutable snapshot of a dataset's rows: who, when, why, the original file and its checksum.

    ``checksum`` is the SHA-256 of the canonical parsed rows, so that re-uploading the same content
    in another format or encoding is recognised as identical; ``file_sha256`` is that of the bytes.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    stored_file = models.CharField(max_length=500, blank=True, help_text="Path under UPLOAD_ROOT")
    file_sha256 = models.CharField(max_length=64, blank=True)
    source_format = models.CharField(max_length=10, blank=True)
    checksum = models.CharField(max_length=64, db_index=True)
    columns = models.JSONField(default=list)
    column_mapping = models.JSONField(default=list)
    rows = models.JSONField(default=list)
    row_count = models.PositiveIntegerField(default=0)
    restored_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="restorations"
    )
    # When the version first entered the consortium's analyses (its dataset was submitted with it
    # current, or it was stored while the dataset was submitted). Set once, by the lifecycle
    # services with an UPDATE: the content above never changes. Unset means a draft that only its
    # centre sees.
    submitted_at = models.DateTimeField(null=True, blank=True)

    objects = DatasetVersionQuerySet.as_manager()

    write_once_message = "Dataset versions are immutable: upload a new version instead."

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.number}"


class StagedUpload(models.Model):
    """A validated upload waiting for its data manager: shown as a preview (what it changes against
    the current version, each row's effect, warnings) and stored as a version only when confirmed.

    A preview belongs to the person who uploaded it and is confirmed against the version it was
    compared with (``base_version``): if the dataset changed in between, the comparison the person
    saw is no longer true, and confirming is refused until they preview again. Confirming or
    discarding deletes the preview (a confirmed one lives on as the version, with its file).
    """

    key = models.CharField(max_length=32, unique=True)
    centre = models.ForeignKey(Centre, on_delete=models.PROTECT, related_name="+")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    base_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    original_filename = models.CharField(max_length=255, blank=True)
    # the uploaded bytes (at most UPLOAD_MAX_BYTES), written to UPLOAD_ROOT only when confirmed
    content = models.BinaryField(null=True, blank=True)
    source_format = models.CharField(max_length=10, blank=True)
    columns = models.JSONField(default=list)
    column_mapping = models.JSONField(default=list)
    rows = models.JSONField(default=list)
    warnings = models.JSONField(default=list)
    form_counts = models.JSONField(default=dict, help_text="Rows per input form (raw, yi_vi, yi_sei, di, ti)")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"preview of {self.centre.code} / {self.outcome.code}"
