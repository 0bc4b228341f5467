"""The figure store: each figure and table of a result, rendered once and kept as a file.

A result never changes (``AnalysisResult`` is written once), so a rendering keyed by the result,
the figure, its options and its format never goes stale: it is drawn on its first request and
served as stored bytes after that, and the outcome page only links to it, so drawing never adds to
the page's own time. Files under ``MEDIA_ROOT/figures`` rather than database rows: PNGs of
hundreds of kilobytes stay out of PostgreSQL and its backups (they can always be drawn again), and
every web process and worker sees the same store. A file is written to a temporary name in its
directory and moved into place (``os.replace``), so a reader never sees half a file and two first
requests racing each other both leave identical, complete bytes. ``RENDER_VERSION`` is part of
every path: a change in how figures are drawn starts a new set instead of serving old drawings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings

#: Bump when the drawing changes, so that stored renderings are drawn again.
RENDER_VERSION = "2"


def path_for(result_id: int, name: str, option: str, fmt: str) -> Path:
    """Where the rendering of (result, figure or table, option, format) lives."""
    stem = f"{name}--{option}" if option else name
    return (
        Path(settings.MEDIA_ROOT) / "figures" / f"v{RENDER_VERSION}" / str(int(result_id)) / f"{stem}.{fmt}"
    )


def etag_for(result_id: int, name: str, option: str, fmt: str) -> str:
    """The rendering's ETag: the key names bytes that never change."""
    return f'"fig{RENDER_VERSION}-{int(result_id)}-{name}-{option}-{fmt}"'


def stored(result_id: int, name: str, option: str, fmt: str) -> bytes | None:
    """The stored bytes, or None when the rendering has not been made yet."""
    try:
        return path_for(result_id, name, option, fmt).read_bytes()
    except FileNotFoundError:
        return None


def store(result_id: int, name: str, option: str, fmt: str, render: Callable[[], bytes]) -> bytes:
    """The stored bytes, rendering and storing them first if they are not there yet."""
    found = stored(result_id, name, option, fmt)
    if found is not None:
        return found
    content = render()
    target = path_for(result_id, name, option, fmt)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return content
