"""The portal's forms. They collect and shape what a person types; the rules are the services'
(``analysis_validate`` behind ``analysis_update``), whose messages land on the same fields."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.analyses.models import Analysis
from apps.consortium.models import Outcome


class AnalysisSettingsForm(forms.Form):
    """An analysis's specification, with choices from the outcome's data dictionary."""

    name = forms.CharField(max_length=200)
    method = forms.ChoiceField(
        label="Estimator of the between-study variance", choices=Analysis.Method.choices
    )
    test = forms.ChoiceField(
        label="Model-based tests and intervals (cluster-robust CR2 tests take their place where chosen below)",
        choices=Analysis.Test.choices,
    )
    level = forms.FloatField(label="Confidence level (%)")
    dependence = forms.ChoiceField(label="Several effects per study", choices=Analysis.Dependence.choices)
    rho = forms.FloatField(label="Assumed within-study correlation (ρ)")
    robust = forms.BooleanField(
        label="Cluster-robust (CR2) tests where studies have several rows", required=False
    )
    timepoint = forms.ChoiceField(label="Time point", required=False)
    instruments = forms.MultipleChoiceField(
        label="Instruments (none ticked: all)",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Where a study reports several, the first in the data dictionary's order is used.",
    )
    mods = forms.MultipleChoiceField(
        label="Moderators (meta-regression)", required=False, widget=forms.CheckboxSelectMultiple
    )
    subgroup = forms.ChoiceField(label="Subgroups by", required=False)
    cumulative_order = forms.ChoiceField(label="Cumulative meta-analysis ordered by", required=False)
    sensitivity = forms.BooleanField(label="Sensitivity analyses (leave-one-out, influence)", required=False)
    bias = forms.BooleanField(label="Small-study and publication bias checks", required=False)
    reason = forms.CharField(
        label="Reason for the change (recorded in the audit trail)",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )

    def __init__(self, *args: Any, outcome: Outcome, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        moderators = [m for m in outcome.moderators or [] if isinstance(m, dict) and m.get("name")]
        names = [(m["name"], m["name"]) for m in moderators]
        fields: Any = self.fields
        fields["timepoint"].choices = [("", "every time point"), ("latest", "each study's latest")] + [
            (t, t) for t in outcome.timepoints or []
        ]
        fields["instruments"].choices = [(i, i) for i in outcome.instruments or []]
        fields["mods"].choices = names
        fields["subgroup"].choices = [("", "none")] + [
            (m["name"], m["name"]) for m in moderators if m.get("kind") == "categorical"
        ]
        fields["cumulative_order"].choices = [("", "none"), ("year", "year")] + [
            (m["name"], m["name"]) for m in moderators if m.get("kind") == "numeric" and m["name"] != "year"
        ]

    @classmethod
    def initial_for(cls, analysis: Analysis) -> dict[str, Any]:
        from apps.analyses.services import ANALYSIS_FIELDS

        return {field: getattr(analysis, field) for field in ANALYSIS_FIELDS}
