"""Query filters of the API's lists, strict about their values.

A value that is not what the filter takes (``?is_default=maybe``) is a 400 naming the parameter,
never silently ignored; a well-formed reference to something that does not exist
(``?analysis=999``) is an empty list, as for any filter that matches nothing.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms

from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.datasets.models import Dataset


class StrictBooleanField(forms.NullBooleanField):
    """``true`` or ``false`` (also ``True``/``False``/``1``/``0``); anything else is refused.
    (Django's select widget for this field would turn an unknown value into "no filter".)"""

    widget = forms.TextInput

    def to_python(self, value: Any) -> Any:
        if value is None:  # the parameter is absent
            return None
        if value in (True, "True", "true", "1"):
            return True
        if value in (False, "False", "false", "0"):
            return False
        raise forms.ValidationError("Give true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class StrictChoiceField(forms.ChoiceField):
    """One of the choices; present but empty (``?status=``) is refused rather than ignored."""

    def clean(self, value: Any) -> Any:
        if value is None:  # the parameter is absent
            return ""
        if value == "":
            raise forms.ValidationError("Give one of the choices.", code="invalid_choice")
        return super().clean(value)


class StrictChoiceFilter(django_filters.ChoiceFilter):
    field_class = StrictChoiceField


class StrictIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time; present but empty (``?published_after=``) is refused rather than ignored."""

    def clean(self, value: Any) -> Any:
        if value == "":
            raise forms.ValidationError("Give a time in ISO 8601, e.g. 2026-03-31T09:00:00Z.", code="invalid")
        return super().clean(value)


class StrictIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = StrictIsoDateTimeField


class DatasetFilter(django_filters.FilterSet):
    status = StrictChoiceFilter(choices=Dataset.Status.choices)
    centre__code = django_filters.CharFilter(field_name="centre__code")
    outcome__code = django_filters.CharFilter(field_name="outcome__code")

    class Meta:
        model = Dataset
        fields = ["status", "centre__code", "outcome__code"]


class AnalysisFilter(django_filters.FilterSet):
    outcome__code = django_filters.CharFilter(field_name="outcome__code")
    is_default = StrictBooleanFilter(field_name="is_default")

    class Meta:
        model = Analysis
        fields = ["outcome__code", "is_default"]


class AnalysisResultFilter(django_filters.FilterSet):
    analysis = django_filters.NumberFilter(field_name="analysis_id")
    status = StrictChoiceFilter(choices=AnalysisResult.Status.choices)
    release = django_filters.CharFilter(method="in_release", help_text="A release's name: its results.")
    analysis__outcome__code = django_filters.CharFilter(field_name="analysis__outcome__code")

    class Meta:
        model = AnalysisResult
        fields = ["analysis", "status", "release", "analysis__outcome__code"]

    def in_release(self, queryset: Any, name: str, value: str) -> Any:
        """Results the named release froze; a release the user may not read (embargoed) has none."""
        readable = Release.objects.visible_to(self.request.user).filter(name=value)
        return queryset.filter(release_entries__release__in=readable)


class ReleaseFilter(django_filters.FilterSet):
    published_after = StrictIsoDateTimeFilter(field_name="published_at", lookup_expr="gte")
    published_before = StrictIsoDateTimeFilter(field_name="published_at", lookup_expr="lt")

    class Meta:
        model = Release
        fields = ["published_after", "published_before"]
