"""The consortium: partner centres, who belongs to them in which role, and the data dictionary."""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from workers.metaanalysis import measures

#: The measures an outcome may use, with their display names, from the engine's registry.
MEASURE_CHOICES = [(code, measures.get(code).title) for code in measures.OUTCOME_MEASURES]

#: An outcome's code (in URLs and file names) and a moderator's name (a column header).
OUTCOME_CODE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
MODERATOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class Centre(models.Model):
    """A partner organisation that contributes study data."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    country = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        permissions = [
            ("view_centre_data", "Can view the centre's datasets, including drafts"),
            ("change_centre_data", "Can upload, correct, submit and withdraw the centre's datasets"),
        ]

    def __str__(self) -> str:
        return self.name


class CentreUserObjectPermission(UserObjectPermissionBase):
    """Direct foreign-key object permissions on centres (faster than guardian's generic ones)."""

    content_object = models.ForeignKey(Centre, on_delete=models.CASCADE)


class CentreGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Centre, on_delete=models.CASCADE)


class Membership(models.Model):
    """A person's role in one centre. Object permissions are granted from it (see services)."""

    class Role(models.TextChoices):
        DATA_MANAGER = "data_manager", "Data manager"
        MEMBER = "member", "Member"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    centre = models.ForeignKey(Centre, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "centre"], name="one_membership_per_centre")]

    def __str__(self) -> str:
        return f"{self.user} - {self.centre} ({self.get_role_display()})"


# Shaped like Membership (user, role, created_at, one-per constraint) on purpose: a role within a
# centre and a consortium-wide role are separate grants with separate audit records.
class ConsortiumRole(models.Model):
    """A consortium-wide role. Steering-group members read all submitted data and manage analyses."""

    class Role(models.TextChoices):
        STEERING = "steering", "Steering group"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="consortium_roles"
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="unique_consortium_role")]

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()})"


class Scope(models.TextChoices):
    """What an API token may do; a service account (``ApiClient``) holds only the read scopes."""

    RESULTS_READ = "results:read", "Read analyses and the results you may see"
    DATASETS_READ = "datasets:read", "Read the datasets you may see"
    DATASETS_WRITE = (
        "datasets:write",
        "Upload, submit, withdraw and restore datasets of centres you manage",
    )
    ANALYSES_WRITE = "analyses:write", "Change analyses and the data dictionary (steering group)"


class ApiClient(models.Model):
    """A token-holding service account (an external tool) with read-only scopes."""

    Scope = Scope
    #: the scopes an administrator may grant a service account: reading, never writing
    READ_SCOPES = (Scope.RESULTS_READ, Scope.DATASETS_READ)

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_client")
    name = models.CharField(max_length=200)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class Outcome(models.Model):
    """An outcome of the data dictionary: it fixes the effect measure and which direction is better."""

    class Direction(models.TextChoices):
        HIGHER_IS_BETTER = "higher", "Higher is better"
        LOWER_IS_BETTER = "lower", "Lower is better"

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    measure = models.CharField(max_length=4, choices=MEASURE_CHOICES)
    direction = models.CharField(max_length=6, choices=Direction.choices, default=Direction.HIGHER_IS_BETTER)
    instruments = models.JSONField(
        default=list, blank=True, help_text="Allowed instruments; empty allows any."
    )
    timepoints = models.JSONField(
        default=list, blank=True, help_text="Allowed time points; empty allows any."
    )
    moderators = models.JSONField(
        default=list,
        blank=True,
        help_text='Recorded moderator columns: [{"name": ..., "kind": "numeric"|"categorical"}]',
    )
    # Written out like every model field (as in AnalysisResult): a migration records each one.
    instrument_scales = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per instrument: {"direction": "higher"|"lower" (is better on its scale), "min": .., '
        '"max": ..} (the range its scores, and so its means, can take).',
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    def reversed_instruments(self) -> list[str]:
        """The instruments whose effects are sign-aligned before pooling: those on which a higher
        score means the opposite of what the outcome's direction says (ASQ:SE counts problems in an
        outcome where higher is better), for measures whose sign can be reversed (differences of
        means and mean changes, correlations, given effect sizes; not tables or proportions)."""
        from workers.metaanalysis.measures import REGISTRY

        measure = REGISTRY.get(self.measure)
        if measure is None or measure.family not in ALIGNABLE_FAMILIES:
            return []
        return [
            name
            for name, scale in (self.instrument_scales or {}).items()
            if isinstance(scale, dict) and scale.get("direction") not in (None, self.direction)
        ]


#: Measure families whose effect changes sign when the scale is reversed (see ``reversed_instruments``).
ALIGNABLE_FAMILIES = ("means", "change", "correlation", "generic")
