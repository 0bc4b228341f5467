"""Load the synthetic demo consortium (idempotent: running it again changes nothing)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from rest_framework.authtoken.models import Token

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.services import analysis_create_default, analysis_recompute, result_release
from apps.consortium import demo
from apps.consortium.models import ApiClient, Centre, ConsortiumRole, Membership, Outcome
from apps.consortium.services import membership_set
from apps.datasets.ingest import parse_json_rows
from apps.datasets.models import Dataset
from apps.datasets.services import dataset_set_status, dataset_version_create, upload_spec_for


class Command(BaseCommand):
    help = "Create the synthetic demo consortium: 5 centres, 77 studies, 4 outcomes, users for every role."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-compute",
            action="store_true",
            help="Leave the recomputes to the worker instead of computing them here.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        with transaction.atomic():
            admin, _ = User.objects.get_or_create(
                username="admin",
                defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.org"},
            )
            if not admin.has_usable_password():
                admin.set_password(demo.DEMO_PASSWORD)
                admin.save()
            steering = self._user(User, "steering", "Sam Steering")
            ConsortiumRole.objects.get_or_create(user=steering, role=ConsortiumRole.Role.STEERING)
            client_user = self._user(User, "api-client", "Guideline platform", usable_password=False)
            ApiClient.objects.get_or_create(
                user=client_user,
                defaults={"name": "Guideline platform (demo)", "scopes": [ApiClient.Scope.RESULTS_READ]},
            )
            Token.objects.get_or_create(user=client_user, defaults={"key": demo.API_TOKEN})

            centres = {}
            for code, name, country, _n in demo.CENTRES:
                centre, _ = Centre.objects.get_or_create(
                    code=code, defaults={"name": name, "country": country}
                )
                centres[code] = centre
                membership_set(
                    actor=None,
                    user=self._user(User, f"dm-{code}", f"Data manager, {code}"),
                    centre=centre,
                    role=Membership.Role.DATA_MANAGER,
                )
                membership_set(
                    actor=None,
                    user=self._user(User, f"member-{code}", f"Member, {code}"),
                    centre=centre,
                    role=Membership.Role.MEMBER,
                )

            outcomes = {}
            for o in demo.OUTCOMES:
                outcome, _ = Outcome.objects.get_or_create(
                    code=o.code,
                    defaults={
                        "name": o.name,
                        "description": o.description,
                        "measure": o.measure,
                        "direction": o.direction,
                        "instruments": list(o.instruments),
                        "timepoints": ["post", "6m", "12m"],
                        "moderators": demo.MODERATORS,
                    },
                )
                outcomes[o.code] = outcome
                analysis_create_default(outcome=outcome)

            for (centre_code, outcome_code), rows in demo.demo_rows().items():
                centre, outcome = centres[centre_code], outcomes[outcome_code]
                if Dataset.objects.filter(centre=centre, outcome=outcome).exists():
                    continue
                parsed = parse_json_rows(rows, spec=upload_spec_for(outcome))
                version, _ = dataset_version_create(
                    actor=None,
                    centre=centre,
                    outcome=outcome,
                    parsed=parsed,
                    content=None,
                    filename="demo.json",
                    reason="Synthetic demo data",
                )
                dataset_set_status(
                    actor=None, dataset=version.dataset, status=Dataset.Status.SUBMITTED, reason="Demo"
                )

        computed = 0
        if not options["no_compute"]:
            for analysis in Analysis.objects.filter(is_default=True):
                result = analysis_recompute(analysis_id=analysis.pk)
                computed += result is not None
                latest = (
                    AnalysisResult.objects.filter(analysis=analysis, status="done").order_by("-seq").first()
                )
                if (
                    latest is not None
                    and not AnalysisResult.objects.filter(analysis=analysis, released=True).exists()
                ):
                    result_release(actor=steering, result=latest)
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo consortium ready: {Centre.objects.count()} centres, {Outcome.objects.count()} outcomes, "
                f"{Dataset.objects.count()} datasets, {computed} analyses computed now."
            )
        )

    @staticmethod
    def _user(User: Any, username: str, full_name: str, *, usable_password: bool = True) -> Any:
        first, _, last = full_name.partition(" ")
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@example.org"},
        )
        if created:
            if usable_password:
                user.set_password(demo.DEMO_PASSWORD)
            else:
                user.set_unusable_password()
            user.save()
        return user
