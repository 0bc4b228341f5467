"""Schemathesis against the whole REST API, in process, as the four roles that use it.

Every operation of the published OpenAPI schema (``/api/schema/``) is exercised with every built-in
check (the Python equivalent of ``schemathesis run --checks all``): no server errors, documented status
codes, content types and headers, responses that match their schemas, invalid input rejected and
valid input accepted, authentication enforced. The requests go through the real Django WSGI
application with its middleware, authentication and permissions.

Each role signs in with its own ``Authorization: Token <key>``: the steering group, a data manager
and a member of centre "alpha", and the read-only API client. The database holds a small consortium
(draft, submitted and multi-version datasets, released and unreleased results), and the generated
path parameters, filters and upload targets are drawn partly from its real ids and codes so that detail
endpoints return real objects, not only 404s.

Every example runs inside a savepoint that is rolled back afterwards, so each one starts from the
same data: examples are independent and a failure replays exactly (Hypothesis runs derandomized).
Uploads are fuzzed in both documented forms, JSON ``rows`` and a multipart ``file`` (schemathesis sends
arbitrary bytes as the file, which the ingest must reject with a 400 that lists the problems).

Each role runs as one test whose operations are reported as subtests: ``-x`` stops at the first
failing operation; without it every operation reports its first (shrunk) failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck

from tests.conftest import SMD_ROWS, make_cast, publish, store_rows

ROLES = ["steering", "dm_a", "member_a", "api_client"]
# Examples per operation in the fuzzing phase; the examples and coverage phases add their own
# (deterministic) cases on top. Tuned so that the four roles together take about a minute.
MAX_EXAMPLES = 8
SEED = 20240611
# Share of generated path parameters, filters and upload targets taken from the real objects.
REAL_ID_PROBABILITY = 0.7


@pytest.fixture
def fuzz_world(db: Any, tmp_media: Any) -> dict[str, Any]:
    return populate()


def populate() -> dict[str, Any]:
    """The cast of tests/conftest.py with datasets in every state (draft, submitted, withdrawn), two
    versions of one, and results of every kind (released, unreleased, failed)."""
    from apps.analyses.models import Analysis, AnalysisResult
    from apps.analyses.services import analysis_create_default, analysis_recompute
    from apps.api.tokens import allowed_scopes, token_create
    from apps.consortium.models import Outcome
    from apps.datasets.models import Dataset
    from apps.datasets.services import dataset_set_status

    cast = make_cast()
    ca, cb, rf, dep = cast["centre_a"], cast["centre_b"], cast["outcome"], cast["outcome2"]
    users = cast["users"]
    dm_a = users["dm_a"]
    store_rows(centre=ca, outcome=rf, rows=SMD_ROWS, actor=dm_a)  # a draft
    store_rows(centre=ca, outcome=dep, rows=SMD_ROWS, submit=True, actor=dm_a)
    corrected = [dict(r) for r in SMD_ROWS[:3]]
    corrected[1]["sd1i"] = 7.5
    store_rows(centre=ca, outcome=dep, rows=corrected, actor=dm_a)  # version 2 of the submitted one
    store_rows(centre=cb, outcome=rf, rows=SMD_ROWS[1:], submit=True, actor=users["dm_b"])
    withdrawn = store_rows(centre=cb, outcome=dep, rows=SMD_ROWS[:3], submit=True, actor=users["dm_b"])
    dataset_set_status(actor=users["dm_b"], dataset=withdrawn, status=Dataset.Status.WITHDRAWN)
    # An outcome with nothing submitted yet: its analysis fails (no k, no blocks, an error).
    anx = Outcome.objects.create(code="anx", name="Anxiety", measure="SMD", direction="lower")
    analysis_create_default(outcome=anx)
    store_rows(centre=ca, outcome=anx, rows=SMD_ROWS[:2], actor=dm_a)  # a draft only
    for analysis in Analysis.objects.all():
        analysis_recompute(analysis_id=analysis.pk)
    # The depression result is released (members and API clients see it); the others are not.
    released = AnalysisResult.objects.get(analysis__outcome=dep)
    publish(users["steering"], released)

    tokens = {"api_client": cast["token"]}
    for role in ROLES:
        if role != "api_client":
            tokens[role] = token_create(
                actor=users[role],
                user=users[role],
                data={"name": "fuzz", "scopes": allowed_scopes(users[role])},
            )[1]
    return {
        **cast,
        "tokens": tokens,
        "dataset_ids": list(Dataset.objects.values_list("pk", flat=True)),
        "analysis_ids": list(Analysis.objects.values_list("pk", flat=True)),
        "result_ids": list(AnalysisResult.objects.values_list("pk", flat=True)),
        "centre_codes": [ca.code, cb.code],
        "outcome_codes": [rf.code, dep.code, anx.code],
    }


@pytest.fixture(params=ROLES)
def role(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def wsgi_app() -> Iterator[Any]:
    """The project's WSGI application, with the per-request connection clean-up turned off.

    Django closes "old" database connections when a request starts and finishes; inside the test's
    transaction that would close the test's own connection. Django's test client disconnects the same
    signal for the same reason.
    """
    from django.core.wsgi import get_wsgi_application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# Writes that a permission class refuses before the request body is read, for every role but the
# steering group: outcomes and analyses (SteeringWrites) and publishing a release; and
# every write of the API client (ApiClientsReadOnly). For a role refused up front, the coverage
# phase's few hundred body variants per operation would all get the same 403, so it is off there;
# the fuzzing phase still sends that role its examples (positive and negative), enough to check that
# the refusal is a documented, well-formed response and never a 5xx. Dataset writes (upload, submit,
# withdraw, restore) are decided per centre inside the view, so every person gets their full coverage
# phase there. (Operation names are "METHOD /path".)
STEERING_WRITES = (
    r"^(POST|PATCH) /api/v1/(outcomes/|outcomes/\{code\}/|analyses/|analyses/\{id\}/|releases/)$"
)
DATASET_WRITES = (
    r"^POST /api/v1/datasets/(upload/|\{id\}/submit/|\{id\}/withdraw/|\{id\}/versions/\{number\}/restore/)$"
)


SEMANTIC_WRITES = (
    r"^(POST|PATCH) /api/v1/(outcomes/|outcomes/\{code\}/|analyses/|analyses/\{id\}/)$"
    r"|^POST /api/v1/(datasets/upload/|releases/)$"
)
POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429"]


def _config(world: dict[str, Any], role: str) -> schemathesis.Config:
    """All checks and all phases, positive and negative data, as ``role``; real ids and codes mixed
    into the generated path parameters, filters and upload targets."""

    def real(dictionary: str) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": REAL_ID_PROBABILITY}

    def operation(path_regex: str, **parameters: Any) -> dict[str, Any]:
        return {"include-path-regex": path_regex, "parameters": parameters}

    operations = [
        operation(
            r"^/api/v1/datasets/\{id\}/",
            **{
                "path.id": real("dataset_ids"),
                "path.number": real("version_numbers"),
                "query.from": real("version_numbers"),
                "query.to": real("version_numbers"),
            },
        ),
        operation(
            r"^/api/v1/datasets/$",
            **{"query.centre__code": real("centre_codes"), "query.outcome__code": real("outcome_codes")},
        ),
        operation(
            r"^/api/v1/datasets/upload/$",
            **{"body.centre": real("centre_codes"), "body.outcome": real("outcome_codes")},
        ),
        operation(r"^/api/v1/analyses/\{id\}/", **{"path.id": real("analysis_ids")}),
        operation(
            r"^/api/v1/analyses/$",
            **{"query.outcome__code": real("outcome_codes"), "body.outcome": real("outcome_codes")},
        ),
        operation(r"^/api/v1/results/\{id\}/", **{"path.id": real("result_ids")}),
        operation(
            r"^/api/v1/results/$",
            **{
                "query.analysis": real("analysis_ids"),
                "query.analysis__outcome__code": real("outcome_codes"),
            },
        ),
        operation(r"^/api/v1/centres/\{code\}/", **{"path.code": real("centre_codes")}),
        operation(r"^/api/v1/outcomes/\{code\}/", **{"path.code": real("outcome_codes")}),
    ]
    # Rules a schema cannot state: an analysis's moderators must be ones its outcome records, an
    # outcome's code must be new and a moderator in use cannot be dropped, an uploaded file must be a
    # table of the outcome's statistics, a referenced outcome must exist. There, a schema-valid request
    # may be refused with a 400 that names the problem (every other status stays as strict).
    operations.append(
        {
            "include-name-regex": SEMANTIC_WRITES,
            "checks": {
                "positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, "400"]},
            },
        }
    )
    refused_up_front = [] if role == "steering" else [STEERING_WRITES]
    if role == "api_client":
        refused_up_front.append(DATASET_WRITES)
    for name_regex in refused_up_front:
        operations.append({"include-name-regex": name_regex, "phases": {"coverage": {"enabled": False}}})
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},  # nothing written to the work tree
            "dictionaries": {
                "dataset_ids": {"values": world["dataset_ids"]},
                "analysis_ids": {"values": world["analysis_ids"]},
                "result_ids": {"values": world["result_ids"]},
                "centre_codes": {"values": world["centre_codes"]},
                "outcome_codes": {"values": world["outcome_codes"]},
                "version_numbers": {"values": [1, 2]},
            },
            "auth": {"openapi": {"tokenAuth": {"api_key": "Token " + world["tokens"][role]}}},
            "checks": {"enabled": True},  # every built-in check: `schemathesis run --checks all`
            "phases": {
                "examples": {"enabled": True},
                "coverage": {"enabled": True},
                "fuzzing": {"enabled": True},
            },
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
            "operations": operations,
        }
    )


@pytest.fixture
def unthrottled(settings: Any) -> None:
    """Rate limits out of the way: one fuzzer sends thousands of requests a minute, and its probes
    with missing and wrong tokens would soon get every request from "its address" refused with 429.
    Rate limiting is not what this test is about."""
    from django.core.cache import cache

    settings.API_THROTTLE_RATES = dict.fromkeys(settings.API_THROTTLE_RATES, "100000/second")
    cache.clear()


@pytest.fixture
def api_schema(fuzz_world: dict[str, Any], role: str, wsgi_app: Any, unthrottled: None) -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app, config=_config(fuzz_world, role))


# schemathesis 4.32.5 renames the running test after each operation through ``Function._nodeid``, an
# attribute pytest 9.2 no longer has (the id now lives in ``Node._id`` as a ``NodeId``). Without this
# shim every lazily loaded schema fails with "'Function' object has no attribute '_nodeid'". It only
# adds the old attribute back, with the old meaning; drop it once schemathesis supports pytest 9.2.
if not hasattr(pytest.Function, "_nodeid"):
    from _pytest.nodeid import coerce_node_id

    def _set_nodeid(node: pytest.Function, value: str) -> None:
        node._id = coerce_node_id(value)

    pytest.Function._nodeid = property(lambda node: node.nodeid, _set_nodeid)  # type: ignore[attr-defined]

schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_schema_for_every_role(case: Any, role: str) -> None:
    # A savepoint per example, always rolled back: every example starts from the same data.
    with transaction.atomic():
        try:
            case.call_and_validate()
        finally:
            transaction.set_rollback(True)
