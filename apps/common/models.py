"""Record behaviour shared by several apps' models (no tables of its own)."""

from __future__ import annotations

from typing import Any


class WriteOnce:
    """Mixin for records that are written once and then only read: the audit trail and the
    dataset versions that results cite. Saving an existing row or deleting one raises, so no code
    path (admin, shell, a future service) can rewrite what a result or an auditor relies on.
    """

    #: what the error says when code tries to change or delete a row
    write_once_message = "This record is never changed or deleted."

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):  # type: ignore[attr-defined]
            raise RuntimeError(self.write_once_message)
        super().save(*args, **kwargs)  # type: ignore[misc]

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(self.write_once_message)
