"""Rules for the text of the data dictionary and of analysis settings.

These names end up in spreadsheet templates (openpyxl refuses control characters: a stored one
made the outcome's template a permanent 500), in upload matching and on every page. Control
characters (Unicode category Cc) and invisible format characters (Cf: zero-width spaces, bidi
overrides that reverse what a reader sees) have no place in a name; line breaks and tabs are
allowed only in descriptions.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError

_MULTILINE_ALLOWED = {"\n", "\r", "\t"}
MODERATOR_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")


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
