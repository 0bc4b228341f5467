"""Rules for names and free text: the data dictionary, analysis settings, tokens, webhooks, releases.

These names end up in spreadsheet templates (openpyxl refuses control characters: a stored one
made the outcome's template a permanent 500), in upload matching and on every page. Control
characters (Unicode category Cc) and invisible format characters (Cf: zero-width spaces, bidi
overrides that reverse what a reader sees) have no place in a name; line breaks and tabs are
allowed only in descriptions.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError

_MULTILINE_ALLOWED = {"\n", "\r", "\t"}

# The same rule as a pattern for the API schema: C0 and C1 controls and the format characters of
# the Basic Multilingual Plane (zero-width, bidirectional and other invisible ones). ``clean_text``
# is the authority; it also refuses the few format characters above U+FFFF.
_FORMAT_BMP = (
    r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    r"\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
PLAIN_TEXT_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f" + _FORMAT_BMP + "]*$"
MULTILINE_TEXT_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f" + _FORMAT_BMP + "]*$"


def clean_text(
    value: object, *, field: str, max_length: int, multiline: bool = False, blank: bool = False
) -> str:
    """``value`` as NFC text, or a ValidationError that says what is wrong and where."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be text.")
    text = unicodedata.normalize("NFC", value.strip() if not multiline else value)
    if not text and not blank:
        raise ValidationError(f"{field} may not be empty.")
    if len(text) > max_length:
        raise ValidationError(f"{field} is longer than {max_length} characters.")
    for position, ch in enumerate(text, start=1):
        if multiline and ch in _MULTILINE_ALLOWED:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf"):
            name = unicodedata.name(ch, "a control character")
            raise ValidationError(
                f"{field} contains U+{ord(ch):04X} ({name.lower()}) at character {position}: "
                "remove it (it is invisible or a control character)."
            )
    return text


def clean_name_list(value: object, *, field: str, max_items: int = 100, max_length: int = 100) -> list[str]:
    """A list of distinct names (instruments, time points): text, NFC, no duplicates ignoring case."""
    if not isinstance(value, list):
        raise ValidationError(f"{field} must be a list of names.")
    if len(value) > max_items:
        raise ValidationError(f"{field} may list at most {max_items} names.")
    names: list[str] = []
    seen: dict[str, str] = {}
    for item in value:
        name = clean_text(item, field=f"Each of {field}", max_length=max_length)
        key = name.casefold()
        if key in seen:
            raise ValidationError(f"{field} lists {seen[key]!r} twice.")
        seen[key] = name
        names.append(name)
    return names


class FieldChecks:
    """One check per field, every field's problems collected: what a form's ``clean`` does, for
    the services that validate a whole entry (``outcome_validate``, ``analysis_validate``)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.errors: dict[str, list[str]] = {}
        self.cleaned: dict[str, Any] = {}

    def check(self, field: str, clean: Callable[[Any], Any]) -> None:
        try:
            self.cleaned[field] = clean(self.values.get(field))
        except ValidationError as exc:
            self.errors.setdefault(field, []).extend(exc.messages)

    def result(self) -> dict[str, Any]:
        """The cleaned values, or a ValidationError with the messages of every field."""
        if self.errors:
            raise ValidationError(self.errors)
        return self.cleaned
