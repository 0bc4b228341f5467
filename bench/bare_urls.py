"""The platform's URLs plus ``/bench/bare/``: a Django view that does nothing, behind the same
middleware, the yardstick the API benchmark divides by (``bench.api_bench``)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from apps.config.urls import handler404, handler500  # noqa: F401
from apps.config.urls import urlpatterns as platform_urls


def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b'{"ok":true}', content_type="application/json")


urlpatterns = [path("bench/bare/", bare), *platform_urls]
