"""Text normalisation shared by parsing, BM25 and evidence scoring, so they agree on what a word is."""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"<[^>]+>")
_WS = re.compile(r"[ \t\u00a0]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def fold(text: str) -> str:
    """Lower-case and strip accents: 'Mobilità' and 'mobilita' must match."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower()


def strip_html(text: str) -> str:
    return clean(html.unescape(_TAG.sub(" ", text)))


def clean(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return _WS.sub(" ", text).strip()


def strip_control(text: str) -> str:
    """Remove control characters (keeping newlines and tabs) from untrusted input."""
    return _CONTROL.sub(" ", text)


def contains_folded(haystack: str, needle: str) -> bool:
    return fold(needle) in fold(haystack)
