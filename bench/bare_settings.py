"""Local settings with ``bench.bare_urls`` as the URLconf (for ``bench.api_bench`` only)."""

from apps.config.settings.local import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
