"""The notes and block helpers every part of an analysis report uses.

A block that cannot be computed, or does not apply, is left out of the report and a note says
why (``{"block", "code", "message"}``): a user never meets a silent NaN.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .errors import EngineError
from .jsonable import ResultBase

__all__ = ["Labelled", "Notes", "add_block", "safe", "with_labels"]


class Notes:
    """The report's notes, in the order they were added."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, block: str, code: str, message: str) -> None:
        self.items.append({"block": block, "code": code, "message": message})


def safe(notes: Notes, block: str, fn: Callable[[], Any]) -> Any:
    """Run one block; an engine error becomes a note and the block is left out."""
    try:
        return fn()
    except EngineError as exc:
        notes.add(block, exc.code, exc.message)
        return None


def add_block(
    blocks: dict[str, Any], notes: Notes, block: str, fn: Callable[[], Any], *, reasons: bool = False
) -> Any:
    """Run one block and store it; with ``reasons``, its reasons for each NaN field become notes."""
    res = safe(notes, block, fn)
    if res is not None:
        blocks[block] = res
        if reasons:
            for key, msg in res.na_reasons.items():
                notes.add(block, key, msg)
    return res


@dataclasses.dataclass(frozen=True, eq=False)
class Labelled(ResultBase):
    """A per-study result with the study labels added when serialised."""

    result: ResultBase
    study: list[str]

    def to_dict(self) -> dict[str, Any]:
        out = self.result.to_dict()
        out["study"] = list(self.study)
        return out


def with_labels(res: ResultBase, labels: list[str]) -> Labelled:
    return Labelled(result=res, study=labels)
