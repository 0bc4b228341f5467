"""The error responses every operation can give, added to the OpenAPI schema in one place.

drf-spectacular documents what a view returns on success; the errors come from layers around the
view (authentication, permissions, throttling, the body limit, lookups), the same for every
operation. This hook writes them down so that the published schema lists every status code the API
answers, and clients can rely on its shapes: ``{"detail": "..."}``, or for a request that failed
validation, a message list per field.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

_ERROR = "ErrorDetail"
_FIELD_ERRORS = "FieldErrors"

_COMPONENTS = {
    _ERROR: {
        "type": "object",
        "description": "What went wrong, in words a person can act on.",
        "properties": {
            "detail": {"type": "string"},
            "errors": {"type": "array", "items": {"$ref": "#/components/schemas/UploadError"}},
        },
        "required": ["detail"],
    },
    _FIELD_ERRORS: {
        "type": "object",
        "description": "A request that failed validation: the problems by field (`non_field_errors` "
        "for the request as a whole), or a `detail` message.",
        "additionalProperties": {
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "string"},
                {"type": "object"},
                {"type": "array", "items": {"type": "object"}},
            ]
        },
    },
}


def _response(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if headers:
        response["headers"] = headers
    return response


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}


def _blank_or_pattern(node: Any) -> None:
    """drf-spectacular writes a blank-allowed string with a pattern as ``oneOf: [pattern, empty]``;
    the platform's text patterns admit the empty string too, so a blank value matched both and
    failed ``oneOf``. ``anyOf`` says what is meant."""
    if isinstance(node, dict):
        one_of = node.get("oneOf")
        if isinstance(one_of, list) and {"type": "string", "maxLength": 0} in one_of:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _blank_or_pattern(value)
    elif isinstance(node, list):
        for value in node:
            _blank_or_pattern(value)


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook (``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]``)."""
    _blank_or_pattern(result.get("components", {}))
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_COMPONENTS)
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            has_body = "requestBody" in operation
            has_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
            errors = {
                "401": _response("No credentials, or credentials that are not valid.", _ERROR),
                "403": _response("Signed in, but this role may not do this.", _ERROR),
                "429": _response("Too many requests: wait `Retry-After` seconds.", _ERROR, _RETRY_AFTER),
            }
            if "{" in path or has_body:
                errors["404"] = _response("Not found, or not visible to you.", _ERROR)
            if has_body or has_query:
                errors["400"] = _response("The request is not valid; nothing was changed.", _FIELD_ERRORS)
            if has_body:
                errors["413"] = _response("The request body is larger than the limit.", _ERROR)
            for status, response in errors.items():
                responses.setdefault(status, response)
    return result


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Token <secret>``: a personal or service-account token (docs/api.md)."""

    target_class = "apps.api.authentication.ApiTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <secret>`: a token created at /api/v1/tokens/ or in the portal. "
            "What a token may do is what its user may do, within its scopes.",
        }


class PasswordScheme(OpenApiAuthenticationExtension):
    """HTTP Basic with the person's password: only to create a token."""

    target_class = "apps.api.authentication.PasswordAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "basic"}
