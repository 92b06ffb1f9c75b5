"""Text normalisation shared by parsing, BM25 and evidence scoring, so they agree on what a word is."""

from __future__ import annotations

import html
import re
import unicodedata

_TAG = re.compile(r"<[^>]+>")
_WS = re.compile(r"[ \t\u00a0]+")
# Lone surrogates too: valid in a Python str (JSON "\\ud800"), but no UTF-8 encoder, database or
# JSON response can write them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def fold(text: str) -> str:
    """Lower-case and strip accents: 'Mobilità' and 'mobilita' must match."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower()


def fold_head(text: str, limit: int) -> str:
    """fold() of at most `limit` characters of `text`, for every regex and word split run over a question.

    NFKD may lengthen a text 18-fold (U+FDFA): the decomposed text is cut to twice the limit (room
    for one combining mark per letter) before the marks are dropped, and the result to the limit.
    """
    text = unicodedata.normalize("NFKD", text[:limit])[: 2 * limit]
    return "".join(c for c in text if not unicodedata.combining(c)).lower()[:limit]


def strip_html(text: str) -> str:
    return clean(html.unescape(_TAG.sub(" ", text)))


def clean(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return _WS.sub(" ", text).strip()


def strip_control(text: str) -> str:
    """Remove control characters (keeping newlines and tabs) and lone surrogates from untrusted input."""
    return _CONTROL.sub(" ", text)
