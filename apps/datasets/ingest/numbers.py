"""Numbers written as text: the engine's reader (:mod:`workers.metaanalysis.tables`), which the
command line shares, so that an upload and the CLI read the same file as the same numbers."""

from __future__ import annotations

from workers.metaanalysis.tables import DecimalMark, NumberText, classify, detect_decimal_mark, resolve

__all__ = ["DecimalMark", "NumberText", "classify", "detect_decimal_mark", "resolve"]
