"""List pagination with bounds: no parameter can ask the database for an impossible page."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """``?limit`` is capped at ``max_limit``; an ``?offset`` past the end gives an empty page.

    DRF already ignores non-numeric and negative values (the default applies); the bounds stop a
    value such as 99999999999999999999 from reaching SQL, where it overflows a bigint (a 500).
    """

    default_limit = 100
    max_limit = 1000

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        self.request = request
        self.limit = self.get_limit(request)
        if self.limit is None:
            return None
        self.count = self.get_count(queryset)
        self.offset = min(self.get_offset(request), self.count)
        if self.count > self.limit and self.template is not None:
            self.display_page_controls = True
        if self.count == 0 or self.offset == self.count:
            return []
        return list(queryset[self.offset : self.offset + self.limit])
