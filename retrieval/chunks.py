"""The unit every stage passes along: a passage that stands alone when shown as a source."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Chunk:
    id: str
    document: str
    title: str
    section: str
    text: str
    language: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256()
        for part in (self.id, self.title, self.section, self.text, repr(sorted(self.metadata.items()))):
            h.update(part.encode("utf-8"))
            h.update(b"\x00")
        return h.hexdigest()

    def flat_metadata(self) -> dict[str, Any]:
        """Chroma only stores scalars; lists become comma strings plus per-year flags for filtering."""
        meta: dict[str, Any] = {
            "document": self.document,
            "title": self.title,
            "section": self.section,
            "language": self.language,
        }
        for key, value in self.metadata.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple)):
                meta[key] = ",".join(str(v) for v in value)
            else:
                meta[key] = value
        for year in self.metadata.get("period_years", []) or []:
            meta[f"year_{year}"] = True
        return meta


def is_prose(section: str) -> bool:
    """Prose pages number their sections "§1", "§2": their text repeats only the title, not the section."""
    return section.startswith("§")


def head_size(section: str) -> int:
    """Lines a passage's text starts with before its body: the title, plus the section for structured rows."""
    return 1 if is_prose(section) else 2


def body_lines(text: str, section: str) -> list[str]:
    """A passage's body: its text without the title (and section) lines it starts with (retrieval.corpus)."""
    return text.split("\n")[head_size(section):]


def slug(text: str) -> str:
    keep = [c.lower() if c.isalnum() else "-" for c in text]
    out = "".join(keep)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")[:60]
