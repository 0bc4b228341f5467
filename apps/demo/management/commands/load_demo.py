"""Load the synthetic demo consortium (idempotent: running it again changes nothing).

Its sign-ins use a password and an API token published in the README. Under production settings
the command refuses unless given ``--allow-production``, and even then the published credentials
are never created: each demo account gets a random password and the API client a random token,
printed once.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from apps.analyses.models import Analysis, Release
from apps.analyses.releases import release_publish
from apps.analyses.services import analysis_create_default, analysis_recompute
from apps.api.models import ApiToken
from apps.api.tokens import token_create, token_install, tokens_of
from apps.consortium.models import ApiClient, Centre, ConsortiumRole, Membership, Outcome
from apps.consortium.services import membership_set
from apps.datasets.ingest import parse_json_rows
from apps.datasets.models import Dataset
from apps.datasets.services import dataset_set_status, dataset_version_create, upload_spec_for
from apps.demo import synthetic as demo

#: the demo's first release: what members and API clients read after ``make run``
DEMO_RELEASE = "demo-2026.1"


class Command(BaseCommand):
    help = "Create the synthetic demo consortium: 5 centres, 77 studies, 4 outcomes, users for every role."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-compute",
            action="store_true",
            help="Leave the recomputes to the worker instead of computing them here.",
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Load the demo under production settings, with random credentials printed once "
            "instead of the published ones.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.public = not settings.PRODUCTION
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError(
                "These are production settings: the demo's published password and API token would "
                "let anyone in. Use --allow-production to load the demo with random credentials."
            )
        self.issued: list[tuple[str, str]] = []
        User = get_user_model()
        with transaction.atomic():
            admin = self._user(User, "admin", "Ada Admin")
            if not (admin.is_staff and admin.is_superuser):
                admin.is_staff = admin.is_superuser = True
                admin.save(update_fields=["is_staff", "is_superuser"])
            steering = self._user(User, "steering", "Sam Steering")
            ConsortiumRole.objects.get_or_create(user=steering, role=ConsortiumRole.Role.STEERING)
            client_user = self._user(User, "api-client", "Guideline platform", usable_password=False)
            ApiClient.objects.get_or_create(
                user=client_user,
                defaults={"name": "Guideline platform (demo)", "scopes": [ApiClient.Scope.RESULTS_READ]},
            )
            if not tokens_of(client_user).exists():
                if self.public:
                    # the README's token: stored hashed like any other, so a newcomer's first curl works
                    token_install(
                        user=client_user,
                        secret=demo.API_TOKEN,
                        name="Demo token (published in the README)",
                        scopes=[ApiToken.Scope.RESULTS_READ],
                    )
                else:
                    _, secret = token_create(
                        actor=admin,
                        user=client_user,
                        data={"name": "Demo token", "scopes": [ApiToken.Scope.RESULTS_READ]},
                    )
                    self.issued.append(("API token of api-client", secret))

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
                        "instrument_scales": {
                            name: demo.SCALES[name].entry() for name in o.instruments if name in demo.SCALES
                        },
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
                # the upload's own parser and storage service (as upload_receive calls them, same
                # keywords), without its permission checks: the demo is written by the system
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
            if not Release.objects.exists():
                # members and API clients read released results: the demo starts with a release
                release_publish(
                    actor=steering,
                    name=DEMO_RELEASE,
                    notes="The demo consortium's first results, published by the steering group.",
                )
        for what, secret in self.issued:
            self.stdout.write(f"  {what}: {secret}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo consortium ready: {Centre.objects.count()} centres, {Outcome.objects.count()} outcomes, "
                f"{Dataset.objects.count()} datasets, {computed} analyses computed now."
            )
        )

    def _user(self, User: Any, username: str, full_name: str, *, usable_password: bool = True) -> Any:
        """The demo account, created once. A password is set when the account has none at all (an
        empty hash counts as usable to Django, so it is checked directly); one changed since is kept."""
        first, _, last = full_name.partition(" ")
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"first_name": first, "last_name": last, "email": f"{username}@example.org"},
        )
        if created or not user.password:
            if usable_password:
                password = demo.DEMO_PASSWORD if self.public else secrets.token_urlsafe(12)
                user.set_password(password)
                if not self.public:
                    self.issued.append((f"password of {username}", password))
            else:
                user.set_unusable_password()
            user.save()
        return user
