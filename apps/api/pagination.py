"""List pagination with bounds: no parameter can ask the database for an impossible page."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit`` (1 or more) is capped at ``max_limit``; an ``?offset`` past the end gives an empty
    page; anything that is not a whole number in range is a 400 that says so.

    DRF alone ignores a malformed value and lets a huge one reach SQL, where 99999999999999999999
    overflows a bigint (a 500).
    """

    default_limit = 100
    max_limit = 1000

    def get_limit(self, request: Any) -> int:
        return min(
            query_whole_number(request, self.limit_query_param, minimum=1, default=self.default_limit),
            self.max_limit,
        )

    def get_offset(self, request: Any) -> int:
        return query_whole_number(request, self.offset_query_param, minimum=0, default=0)

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self.request = request
        self.limit = self.get_limit(request)
        offset = self.get_offset(request)
        self.count = self.get_count(queryset)
        self.offset = min(offset, self.count)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        if self.count == 0 or self.offset == self.count:
            return []
        return list(queryset[self.offset : self.offset + self.limit])

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page (default {self.default_limit}, at most {self.max_limit})."
                )
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"]["minimum"] = 0
        return parameters


def query_whole_number(request: Any, name: str, *, minimum: int, default: int) -> int:
    """The query parameter ``name`` as a whole number of at least ``minimum`` (``default`` when it is
    absent); anything else is a 400 naming the parameter."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or int(raw) < minimum:
        raise ValidationError({name: [f"Give a whole number of at least {minimum}, not {raw[:40]!r}."]})
    return int(raw)
