"""Prose pages and news items: paragraph-aware chunks that never cut a lead-in from its list."""

from __future__ import annotations

import re

from retrieval.text import clean

MAX_CHARS = 1200
MIN_CHARS = 60
_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-ZÀ-Ý“\"'])")


def paragraphs(raw: str) -> list[str]:
    return [clean(p) for p in raw.split("\n") if clean(p)]


def group_paragraphs(paras: list[str], max_chars: int = MAX_CHARS) -> list[str]:
    """Pack paragraphs up to max_chars; a paragraph ending in ':' stays with what follows."""
    pieces: list[str] = []
    for p in paras:
        if len(p) <= max_chars:
            pieces.append(p)
            continue
        buf = ""
        for sentence in _SENTENCE.split(p):
            if buf and len(buf) + len(sentence) + 1 > max_chars:
                pieces.append(buf)
                buf = sentence
            else:
                buf = f"{buf} {sentence}".strip()
        if buf:
            pieces.append(buf)
    groups: list[list[str]] = []
    for piece in pieces:
        if groups:
            last = groups[-1]
            size = sum(len(x) + 1 for x in last)
            glued = last[-1].rstrip().endswith(":") or last[-1].rstrip().endswith(";")
            if glued or size + len(piece) <= max_chars // 2 or len(piece) < MIN_CHARS:
                last.append(piece)
                continue
        groups.append([piece])
    return ["\n".join(g) for g in groups]
