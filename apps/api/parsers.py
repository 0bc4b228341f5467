"""JSON bodies with a nesting limit.

Python's JSON decoder recurses once per level: a body nested some thousands of levels deep
exhausts the interpreter's recursion limit (a 500 before any view runs), and one that parses may
still recurse through serializers. Nothing the API accepts nests deeper than a few levels (upload
rows: list, object, value), so bodies deeper than ``API_JSON_MAX_DEPTH`` are refused with 400.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(self._too_deep()) from exc
        if _depth_exceeds(data, settings.API_JSON_MAX_DEPTH):
            raise ParseError(self._too_deep())
        return data

    @staticmethod
    def _too_deep() -> str:
        return (
            f"JSON parse error - the body nests deeper than {settings.API_JSON_MAX_DEPTH} levels; "
            "no request to this API needs that."
        )


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Iterative (a recursive check would fail on the input it guards against)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return False
