"""Representations of the consortium's objects in the REST API."""

from __future__ import annotations

import json
from typing import Any

from django.core.validators import RegexValidator
from django.urls import reverse
from rest_framework import serializers

from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.analyses.services import ANALYSIS_FIELDS
from apps.api.documents import SUMMARY_FIELDS
from apps.api.models import ApiToken
from apps.api.tokens import token_is_live
from apps.audit.models import AuditEvent
from apps.common.text import (
    MULTILINE_TEXT_PATTERN,
    PLAIN_TEXT_PATTERN,
    clean_text,
)
from apps.consortium.models import MODERATOR_NAME, OUTCOME_CODE, Centre, Outcome
from apps.consortium.services import OUTCOME_FIELDS
from apps.datasets.models import Dataset, DatasetVersion


class _Strict:
    """Input of exactly the type the schema states: DRF's own fields also take 95 for "95",
    "95" for 95 and "yes" for true, which lets a malformed client pass unnoticed."""

    types: tuple[type, ...] = (str,)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) != (bool in self.types) or not isinstance(data, self.types):
            self.fail("invalid")  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(_Strict, serializers.CharField):
    pass


class StrictSlugField(_Strict, serializers.SlugField):
    pass


class StrictRegexField(_Strict, serializers.RegexField):
    pass


class StrictFloatField(_Strict, serializers.FloatField):
    types = (int, float)


class StrictBooleanField(_Strict, serializers.BooleanField):
    types = (bool,)


class StrictIntegerField(_Strict, serializers.IntegerField):
    types = (int,)


def plain_text(*, max_length: int, multiline: bool = False, **kwargs: Any) -> serializers.CharField:
    """A text field whose schema carries the data dictionary's character rule as a pattern, so
    that clients (and the schema's own validators) know what the server refuses."""
    return StrictCharField(
        max_length=max_length, validators=[PlainTextValidator(multiline=multiline)], **kwargs
    )


class PlainTextValidator(RegexValidator):
    """The data dictionary's character rule (``clean_text``), with its pattern in the schema."""

    def __init__(self, *, multiline: bool) -> None:
        super().__init__(MULTILINE_TEXT_PATTERN if multiline else PLAIN_TEXT_PATTERN)
        self.multiline = multiline

    def __call__(self, value: Any) -> None:
        clean_text(value, field="The text", max_length=len(str(value)), multiline=self.multiline, blank=True)
        super().__call__(value)


class CentreSerializer(serializers.ModelSerializer):
    class Meta:
        model = Centre
        fields = ["id", "code", "name", "country"]


class ModeratorSerializer(serializers.Serializer):
    name = StrictRegexField(MODERATOR_NAME.pattern, max_length=40)
    kind = serializers.ChoiceField(choices=["numeric", "categorical"])


class InstrumentScaleSerializer(serializers.Serializer):
    direction = serializers.ChoiceField(
        choices=["higher", "lower"], help_text="Which scores are better on the instrument's own scale."
    )
    min = StrictFloatField(
        required=False, allow_null=True, help_text="The lowest score (means below it are refused)."
    )
    max = StrictFloatField(
        required=False, allow_null=True, help_text="The highest score (means above it are refused)."
    )


class OutcomeSerializer(serializers.ModelSerializer):
    """Shapes, types and character rules: the rules of the data dictionary as a whole (unique
    names, a measure that cannot change once data exist, moderators in use) are ``outcome_validate``'s."""

    code = StrictRegexField(OUTCOME_CODE.pattern, max_length=40)
    name = plain_text(max_length=200)
    description = plain_text(
        max_length=5000, multiline=True, required=False, allow_blank=True, trim_whitespace=False
    )
    moderators = serializers.ListField(child=ModeratorSerializer(), required=False, max_length=50)
    instruments = serializers.ListField(child=plain_text(max_length=100), required=False, max_length=100)
    timepoints = serializers.ListField(child=plain_text(max_length=100), required=False, max_length=100)
    instrument_scales = serializers.DictField(
        child=InstrumentScaleSerializer(),
        required=False,
        help_text="Per instrument: which end of its scale is better and its range. Effects on an instrument "
        "whose better end differs from the outcome's direction are sign-aligned before pooling.",
    )

    class Meta:
        model = Outcome
        fields = ["id", *OUTCOME_FIELDS]


class DatasetVersionSummarySerializer(serializers.ModelSerializer):
    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "number",
            "created_at",
            "created_by",
            "reason",
            "original_filename",
            "source_format",
            "checksum",
            "file_sha256",
            "row_count",
            "restored_from",
        ]


#: Rows per page of a version read: at the largest row the upload limits allow (200 columns) a
#: page stays within a few MB.
VERSION_ROWS_PAGE = 1000


class DatasetVersionSerializer(DatasetVersionSummarySerializer):
    """A version with one page of its rows (``rows_offset``/``rows_limit`` from the context)."""

    rows = serializers.SerializerMethodField()
    rows_offset = serializers.SerializerMethodField()
    rows_next = serializers.URLField(read_only=True, allow_null=True, default=None)

    class Meta(DatasetVersionSummarySerializer.Meta):
        fields = [
            *DatasetVersionSummarySerializer.Meta.fields,
            "columns",
            "column_mapping",
            "rows",
            "rows_offset",
            "rows_next",
        ]

    def get_rows(self, obj: DatasetVersion) -> list[dict[str, Any]]:
        offset = self.context.get("rows_offset", 0)
        return list(obj.rows[offset : offset + self.context.get("rows_limit", VERSION_ROWS_PAGE)])

    def get_rows_offset(self, obj: DatasetVersion) -> int:
        return int(self.context.get("rows_offset", 0))


class DatasetSerializer(serializers.ModelSerializer):
    """``current_version`` is the version the reader sees (``selectors.with_shown_versions``): for
    readers outside the centre, the latest submitted one."""

    centre: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="code", read_only=True)
    outcome: serializers.SlugRelatedField = serializers.SlugRelatedField(slug_field="code", read_only=True)
    current_version = DatasetVersionSummarySerializer(source="shown_version", read_only=True, allow_null=True)
    submitted_version = DatasetVersionSummarySerializer(
        read_only=True,
        allow_null=True,
        help_text="The version the analyses use while the dataset is submitted (the newest one "
        "submitted). A newer current version is a revision until it is submitted.",
    )

    class Meta:
        model = Dataset
        fields = [
            "id",
            "centre",
            "outcome",
            "status",
            "current_version",
            "submitted_version",
            "created_at",
            "updated_at",
        ]


class UploadOptionsSerializer(serializers.Serializer):
    """What every upload names besides its data: where it goes, why, and what to do with it."""

    centre = StrictSlugField()
    outcome = StrictSlugField()
    reason = plain_text(max_length=500, required=False, allow_blank=True, default="")
    submit = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also submit the new version (one transaction): it enters the analyses at once. "
        "Without it, a new version of a submitted dataset is a revision until it is submitted.",
    )
    preview = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Store nothing; answer with what the upload would change (rows added, removed and "
        "changed, each row's effect size, warnings and, for the steering group, the pooled results).",
    )


class UploadSerializer(UploadOptionsSerializer):
    """An upload: a file (CSV or XLSX) or JSON ``rows``, for one centre and outcome."""

    file = serializers.FileField(required=False, allow_empty_file=True)
    rows = serializers.ListField(child=serializers.DictField(), required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("submit") and attrs.get("preview"):
            raise serializers.ValidationError("Send at most one of 'submit' and 'preview'.")
        if bool(attrs.get("file")) == bool(attrs.get("rows") is not None):
            raise serializers.ValidationError("Send exactly one of 'file' or 'rows'.")
        return attrs


class UploadFileSerializer(UploadOptionsSerializer):
    """Schema of a file upload (``multipart/form-data``)."""

    file = serializers.FileField(help_text="A CSV or XLSX file.")


class UploadRowsSerializer(UploadOptionsSerializer):
    """Schema of an upload of JSON rows (``application/json``)."""

    rows = serializers.ListField(
        child=serializers.DictField(), help_text="One object per row, keyed by column."
    )


class StatusChangeSerializer(serializers.Serializer):
    reason = plain_text(max_length=500, required=False, allow_blank=True, default="")


class UploadErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True)
    column = serializers.CharField(allow_null=True)
    value = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class UploadRejectedSerializer(serializers.Serializer):
    """Schema of a rejection (documentation only: the view builds the body itself)."""

    detail = serializers.CharField()
    # Shadows Serializer.errors on purpose: the documented key is "errors".
    errors = UploadErrorSerializer(many=True)  # type: ignore[assignment]


class UploadResultSerializer(serializers.Serializer):
    created = serializers.BooleanField()
    dataset = DatasetSerializer()
    version = DatasetVersionSummarySerializer()
    mapping = serializers.ListField(child=serializers.DictField())
    warnings = UploadErrorSerializer(many=True)
    forms = serializers.ListField(
        child=serializers.CharField(allow_null=True),
        help_text="Each row's input form: raw, yi_vi, yi_sei, di (Cohen's d) or ti (t statistic).",
    )
    form_counts = serializers.DictField(child=serializers.IntegerField(), help_text="Rows per input form.")


class UploadPreviewSerializer(serializers.Serializer):
    """What an upload would change (``preview: true``); nothing was stored."""

    preview = serializers.BooleanField()
    base_version = serializers.IntegerField(
        allow_null=True, help_text="The version the upload was compared with (none: a new dataset)."
    )
    identical = serializers.BooleanField(
        help_text="The content equals the base version's: confirming stores nothing."
    )
    diff = serializers.DictField(
        help_text="added, removed (rows), changed (cells by row key) and summary (counts)."
    )
    rows = serializers.ListField(
        child=serializers.DictField(),
        help_text="Each row's effect size and 95% CI on the outcome's own scale (effect, ci_lb, ci_ub), its "
        "input form and derivation, or the reason it has none.",
    )
    pooled = serializers.ListField(
        child=serializers.DictField(),
        help_text="Steering group only (empty otherwise): each analysis's pooled result now (before) and "
        "with this upload (after), or why the engine refused it (error). A meta-regression "
        "(meta_regression: true) has no pooled effect: before and after are null.",
    )
    mapping = serializers.ListField(child=serializers.DictField())
    warnings = UploadErrorSerializer(many=True)
    form_counts = serializers.DictField(child=serializers.IntegerField())


class AnalysisResultSummarySerializer(serializers.ModelSerializer):
    """Describes the stored summary (``apps.api.documents.result_summary``) for the schema;
    reads send the stored JSON, and a test checks the two agree."""

    url = serializers.CharField(read_only=True)
    pooled = serializers.DictField(read_only=True, allow_null=True)

    class Meta:
        model = AnalysisResult
        fields = list(SUMMARY_FIELDS)  # the stored summary's keys, defined where it is rendered


class ResultBlockIndexSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="GET it for the block (gzip with Accept-Encoding: gzip).")
    bytes = serializers.IntegerField(help_text="Its size uncompressed.")


class AnalysisResultSerializer(AnalysisResultSummarySerializer):
    """Describes the stored detail (``apps.api.documents.result_detail``)."""

    blocks = serializers.DictField(child=ResultBlockIndexSerializer(), read_only=True)

    class Meta(AnalysisResultSummarySerializer.Meta):
        fields = [
            *AnalysisResultSummarySerializer.Meta.fields,
            "spec",
            "labels",
            "notes",
            "omitted",
            "blocks",
        ]


class ReleaseEntrySerializer(serializers.Serializer):
    analysis = serializers.IntegerField(source="analysis_id")
    analysis_name = serializers.CharField(source="analysis.name")
    outcome = serializers.CharField(source="analysis.outcome.code")
    result = serializers.IntegerField(source="result_id")
    result_url = serializers.SerializerMethodField()
    note = serializers.CharField(
        help_text="Why the release holds this result rather than the analysis's current one "
        "(its current result had no estimate, so an earlier release's result is kept); empty otherwise."
    )

    def get_result_url(self, entry: Any) -> str:
        return reverse("v1:result-detail", kwargs={"pk": entry.result_id})


class ReleaseSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    results_url = serializers.SerializerMethodField()
    published_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    readable = serializers.BooleanField(
        source="is_readable", read_only=True, help_text="False while an embargo lasts."
    )
    results = ReleaseEntrySerializer(source="entries", many=True, read_only=True)

    class Meta:
        model = Release
        fields = [
            "name",
            "url",
            "notes",
            "embargo_until",
            "readable",
            "published_at",
            "published_by",
            "results_url",
            "results",
        ]

    def get_url(self, release: Release) -> str:
        return reverse("v1:release-detail", kwargs={"name": release.name})

    def get_results_url(self, release: Release) -> str:
        return reverse("v1:release-results", kwargs={"name": release.name})


class ReleaseCreateSerializer(serializers.Serializer):
    name = StrictCharField(
        max_length=40, help_text="e.g. 2026.1: letters, digits, dots, hyphens, underscores."
    )
    notes = plain_text(max_length=5_000, multiline=True, required=False, allow_blank=True)
    embargo_until = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Members and API clients read it from then on."
    )
    analyses = serializers.ListField(
        child=StrictIntegerField(min_value=1),
        required=False,
        max_length=1_000,
        help_text="The analyses to freeze (default: every analysis).",
    )


class ReleaseSkippedSerializer(serializers.Serializer):
    analysis = serializers.IntegerField()
    reason = serializers.CharField()


class ReleasePublishedSerializer(ReleaseSerializer):
    skipped = ReleaseSkippedSerializer(many=True, read_only=True)

    class Meta(ReleaseSerializer.Meta):
        fields = [*ReleaseSerializer.Meta.fields, "skipped"]


class AnalysisSerializer(serializers.ModelSerializer):
    """Shapes and types only: the rules of a specification are ``analysis_validate``'s."""

    outcome = serializers.SlugRelatedField(slug_field="code", queryset=Outcome.objects.all())
    name = plain_text(max_length=200)
    state = serializers.SerializerMethodField(
        help_text="running, queued, current (up to date with an estimate), failed (up to date, its "
        "current result has no estimate: the result's error says why) or waiting (no data yet)."
    )
    mods = serializers.ListField(child=StrictCharField(max_length=40), required=False, max_length=10)
    subgroup = StrictCharField(max_length=40, required=False, allow_blank=True)
    cumulative_order = StrictCharField(max_length=40, required=False, allow_blank=True)
    level = StrictFloatField(required=False)
    sensitivity = StrictBooleanField(required=False)
    bias = StrictBooleanField(required=False)
    rho = StrictFloatField(required=False)
    robust = StrictBooleanField(required=False)
    timepoint = StrictCharField(max_length=100, required=False, allow_blank=True)
    instruments = serializers.ListField(child=StrictCharField(max_length=100), required=False, max_length=50)
    current_result = serializers.SerializerMethodField()
    reason = plain_text(
        max_length=500,
        multiline=True,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Why the settings change (recorded in the audit trail with the changed settings).",
    )

    class Meta:
        model = Analysis
        fields = [
            "id",
            "outcome",
            *ANALYSIS_FIELDS,
            "reason",
            "is_default",
            "state",
            "requested_seq",
            "computed_seq",
            "current_result",
        ]
        read_only_fields = ["is_default", "requested_seq", "computed_seq"]

    def validate_outcome(self, value: Outcome) -> Outcome:
        if self.instance is not None and value != self.instance.outcome:
            raise serializers.ValidationError("An analysis stays with its outcome; create a new analysis.")
        return value

    def get_state(self, obj: Analysis) -> str:
        """What its current result is, when the reader may see that result; else only whether a
        recompute is under way (an unreleased failure is not a member's to know)."""
        visible = self.context.get("visible_result_ids")
        if visible is not None and obj.current_result_id is not None and obj.current_result_id not in visible:
            return obj.progress
        return obj.state

    def get_current_result(self, obj: Analysis) -> dict[str, Any] | None:
        visible = self.context.get("visible_result_ids")
        result = obj.current_result
        if result is None:
            return None
        if visible is not None and result.pk not in visible:
            return None
        return json.loads(result.summary_json)  # stored with the result: no blocks decoded


class AuditEventSerializer(serializers.ModelSerializer):
    centre: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor_username",
            "action",
            "object_type",
            "object_id",
            "centre",
            "before",
            "after",
        ]


class ApiTokenSerializer(serializers.ModelSerializer):
    """A token as its owner sees it: never its secret (which is not stored)."""

    id = serializers.CharField(source="token_key", read_only=True, help_text="The token's public prefix.")
    user = serializers.CharField(source="user.username", read_only=True)
    expired = serializers.SerializerMethodField()

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "scopes", "created", "expiry", "last_used_at", "expired"]
        read_only_fields = fields

    def get_expired(self, obj: ApiToken) -> bool:
        return not token_is_live(obj)


class ApiTokenCreateSerializer(serializers.Serializer):
    """Shapes only: the rules (which scopes this account may hold, how long) are ``token_create``'s."""

    name = plain_text(max_length=100)
    scopes = serializers.ListField(child=StrictCharField(max_length=40), max_length=10)
    expires_in_days = StrictIntegerField(
        required=False, help_text="1 to API_TOKEN_MAX_DAYS (365); default 90."
    )
    service_account = StrictCharField(
        max_length=150,
        required=False,
        help_text="Administrators: the username of the service account the token is for.",
    )


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Shown once: store it now, it cannot be shown again."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "secret"]
        read_only_fields = fields
