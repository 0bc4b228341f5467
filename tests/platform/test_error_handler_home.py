"""A domain error becomes an HTTP answer in one place: ``apps/api/errors.py``'s ``exception_handler``.

The scan fails when a module of the API or of the webhooks catches a domain error itself (to turn it
into a status or a body); the behaviour tests hold the handler to the answers clients get. The same
answers through real requests:

- 400 per field from a service's ValidationError: ``tests/api/test_releases_and_results.py``
  (a release name taken), ``tests/api/test_tokens.py`` (scopes), ``tests/webhooks/test_api.py``
  (receiver URLs)
- 403 with the service's message: ``tests/api/test_tokens.py`` (a service account's own token)
- 404 from a centre the uploader may not see: ``tests/api/test_upload_preview.py``
- 409 for a refused state change: ``tests/api/test_datasets_lifecycle.py`` (withdrawing a draft),
  ``tests/webhooks/test_api.py`` (a second ping)
- 400 with every row and column of a rejected upload: ``tests/api/test_upload_rejections.py``
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
HOME = "apps/api/errors.py"
SCANNED = ("apps/api", "apps/webhooks")

#: domain errors a view must let through to the handler (the last part of the caught name)
DOMAIN_ERRORS = {
    "ValidationError",
    "PermissionDenied",
    "ObjectDoesNotExist",
    "DoesNotExist",
    "Http404",
    "UploadRejected",
    "ExportError",
}

#: places that catch a domain error for another purpose than answering a request, and why
CATCHES_ALLOWED = {
    # the token service collects each field's message into one ValidationError of its own
    ("apps/api/tokens.py", "_clean"),
}


def _python_files() -> list[Path]:
    return [p for root in SCANNED for p in sorted((ROOT / root).rglob("*.py")) if "migrations" not in p.parts]


def _caught_names(handler: ast.ExceptHandler, aliases: dict[str, str]) -> list[str]:
    """The names an ``except`` clause catches, as imported (``DjangoValidationError`` is
    ``ValidationError``; ``Centre.DoesNotExist`` is ``DoesNotExist``)."""
    if handler.type is None:
        return []
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    names = []
    for kind in kinds:
        if isinstance(kind, ast.Name):
            names.append(aliases.get(kind.id, kind.id))
        elif isinstance(kind, ast.Attribute):
            names.append(kind.attr)
    return names


def domain_catches(path: Path) -> list[tuple[int, str, str]]:
    """Where the module at ``path`` catches a domain error."""
    return domain_catches_in(path.read_text())


def domain_catches_in(source: str) -> list[tuple[int, str, str]]:
    """Where ``source`` catches a domain error: (line, enclosing function, the error's name)."""
    tree = ast.parse(source)
    aliases = {
        alias.asname: alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname
    }
    # ast.walk goes outside in: a handler's innermost function is the last to claim it
    enclosing: dict[ast.AST, str] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            enclosing.update((node, function.name) for node in ast.walk(function))
    handlers = [node for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler)]
    return sorted(
        (handler.lineno, enclosing.get(handler, ""), name)
        for handler in handlers
        for name in _caught_names(handler, aliases)
        if name in DOMAIN_ERRORS
    )


def test_only_the_handler_turns_a_domain_error_into_http() -> None:
    catches = [
        (rel, line, function, name)
        for path in _python_files()
        if (rel := path.relative_to(ROOT).as_posix()) != HOME
        for line, function, name in domain_catches(path)
        if (rel, function) not in CATCHES_ALLOWED
    ]
    assert not catches, f"a domain error caught outside {HOME} (let it reach the handler): {catches}"


SAMPLE_VIEW = """
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
def upload(request):
    try:
        receive(request)
    except Centre.DoesNotExist:
        raise Http404
    except (UploadRejected, KeyError):
        pass
    except DjangoPermissionDenied:
        pass
    except OSError:
        pass
"""


def test_the_scan_sees_a_view_catching_a_domain_error() -> None:
    assert domain_catches_in(SAMPLE_VIEW) == [
        (6, "upload", "DoesNotExist"),
        (8, "upload", "UploadRejected"),
        (10, "upload", "PermissionDenied"),
    ]
    assert [c for c in domain_catches(ROOT / "apps/api/tokens.py") if c[1] == "_clean"], (
        "the allowed catch must still be seen by the scan (or leave CATCHES_ALLOWED)"
    )


def test_the_api_answers_through_the_handler(settings: Any) -> None:
    assert settings.REST_FRAMEWORK["EXCEPTION_HANDLER"] == "apps.api.errors.exception_handler"


def _answer(exc: Exception, view: Any = None) -> tuple[int, Any, dict[str, str]]:
    from apps.api.errors import exception_handler

    response = exception_handler(exc, {"view": view, "request": None})
    assert response is not None, exc
    return response.status_code, response.data, dict(response.headers)


def _view(action: str, conflict_actions: frozenset[str] = frozenset()) -> Any:
    return SimpleNamespace(action=action, conflict_actions=conflict_actions)


def test_a_validation_error_is_a_400_per_field() -> None:
    from django.core.exceptions import ValidationError

    status, body, _ = _answer(ValidationError({"name": ["Taken: choose a new name."]}))
    assert (status, body) == (400, {"name": ["Taken: choose a new name."]})
    status, body, _ = _answer(ValidationError("Not like this."), _view("create"))
    assert (status, body) == (400, {"non_field_errors": ["Not like this."]})


def test_a_validation_error_in_a_conflict_action_is_a_409() -> None:
    from django.core.exceptions import ValidationError

    view = _view("withdraw", frozenset({"submit", "withdraw"}))
    status, body, _ = _answer(ValidationError("A draft dataset cannot become withdrawn."), view)
    assert (status, body) == (409, {"detail": "A draft dataset cannot become withdrawn."})
    status, _, _ = _answer(ValidationError("Not like this."), _view("partial_update", frozenset({"ping"})))
    assert status == 400


def test_permission_denied_is_a_403_with_the_services_message() -> None:
    from django.core.exceptions import PermissionDenied

    assert _answer(PermissionDenied("Only the steering group publishes releases."))[:2] == (
        403,
        {"detail": "Only the steering group publishes releases."},
    )
    assert _answer(PermissionDenied())[:2] == (
        403,
        {"detail": "You do not have permission to perform this action."},
    )


def test_a_missing_object_is_a_404() -> None:
    from django.http import Http404

    from apps.consortium.models import Centre
    from apps.webhooks.models import Webhook

    assert _answer(Centre.DoesNotExist("No such centre."))[:2] == (404, {"detail": "No such centre."})
    assert _answer(Webhook.DoesNotExist())[:2] == (404, {"detail": "Not found."})
    assert _answer(Http404())[:2] == (404, {"detail": "Not found."})


def test_a_rejected_upload_is_a_400_with_every_problem() -> None:
    from apps.datasets.ingest import UploadError, UploadRejected

    errors = [
        UploadError.about("invalid_request", "centre: This field is required.", column="centre"),
        UploadError.about("invalid_request", "outcome: This field is required.", column="outcome"),
    ]
    status, body, _ = _answer(UploadRejected(errors))
    assert status == 400
    assert body == {
        "detail": "The upload was rejected: 2 problem(s) found. Nothing was stored.",
        "errors": [e.to_dict() for e in errors],
    }


def test_a_result_that_cannot_be_exported_is_a_409_with_its_code() -> None:
    from apps.analyses.exports import ExportError

    status, body, _ = _answer(ExportError("The dataset versions are gone.", code="versions_missing"))
    assert (status, body) == (409, {"detail": "The dataset versions are gone.", "code": "versions_missing"})


def test_drf_errors_keep_their_headers() -> None:
    from rest_framework.exceptions import NotAuthenticated, Throttled

    status, _, headers = _answer(Throttled(wait=30))
    assert status == 429 and headers["Retry-After"] == "30"
    unauthenticated = NotAuthenticated()
    unauthenticated.auth_header = 'Token realm="api"'  # type: ignore[attr-defined]
    status, body, headers = _answer(unauthenticated)
    assert status == 401 and headers["WWW-Authenticate"] == 'Token realm="api"' and "detail" in body


def test_anything_else_is_left_to_the_server_error_page() -> None:
    from apps.api.errors import exception_handler

    assert exception_handler(ZeroDivisionError(), {"view": None, "request": None}) is None
