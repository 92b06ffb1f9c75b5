"""The offices directory (issue 15): which City office handles what, kept by operators in the console.

A decline names the office whose keywords match the question ("Per «multe»: Polizia Locale — …"), else
the URP. The shipped directory has one entry, the URP, pointing to the City's official website: nothing
is invented, and an empty field is simply not shown.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

import prompts
from sibyl.db import Base, utcnow

FIELDS = ("name_it", "name_en", "keywords_it", "keywords_en", "phone", "email", "address", "hours", "url")
LIMITS = {"name_it": 200, "name_en": 200, "keywords_it": 2000, "keywords_en": 2000, "phone": 100, "email": 200,
          "address": 300, "hours": 500, "url": 500}


class Office(Base):
    __tablename__ = "offices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name_it: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200), default="")
    keywords_it: Mapped[str] = mapped_column(Text, default="")  # comma-separated words or phrases
    keywords_en: Mapped[str] = mapped_column(Text, default="")
    phone: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    address: Mapped[str] = mapped_column(String(300), default="")
    hours: Mapped[str] = mapped_column(String(500), default="")
    url: Mapped[str] = mapped_column(String(500), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    def name(self, lang: str) -> str:
        return (self.name_en if lang == "en" and self.name_en else self.name_it) or self.name_en

    def keywords(self) -> list[str]:
        return [k for k in (fold(w) for w in re.split(r"[,;\n]", f"{self.keywords_it},{self.keywords_en}")) if k]


class BadOffice(ValueError):
    """A directory entry that cannot be saved; the message is the prompts key (operator.*.toml)."""


@dataclass(frozen=True)
class Match:
    office: Office
    keyword: str  # the keyword as written in the directory


def fold(text: str) -> str:
    """Lower case, no accents, single spaces: 'Città ' and 'citta' match."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"\w+", plain))


def details(office: Office, lang: str) -> str:
    """'Name — tel. …; e-mail …; …': only the fields that are filled in (wording: prompts/messages)."""
    parts = [prompts.text(lang, f"office_{name}", value=getattr(office, name).strip())
             for name in ("phone", "email", "address", "hours", "url") if getattr(office, name).strip()]
    name = office.name(lang)
    return f"{name} — {'; '.join(parts)}" if parts else name


class Directory:
    """The offices table; reads are small (a handful of rows), so every decline reads it fresh and an
    operator's change reaches every replica at once."""

    def __init__(self, engine) -> None:
        self.Session = sessionmaker(engine, expire_on_commit=False)

    def all(self) -> list[Office]:
        with self.Session() as db:
            return list(db.scalars(select(Office).order_by(Office.id)).all())

    def get(self, office_id: int) -> Office | None:
        with self.Session() as db:
            return db.get(Office, office_id)

    def save(self, values: dict[str, str], office_id: int | None = None) -> Office:
        """Add or change an entry; BadOffice('office_name_required' / 'office_field_too_long')."""
        raw = {k: str(values.get(k) or "").replace("\x00", "") for k in FIELDS}  # PostgreSQL refuses NUL
        clean = {k: " ".join(raw[k].split()) if k not in ("keywords_it", "keywords_en") else raw[k].strip()
                 for k in FIELDS}
        if not clean["name_it"] and not clean["name_en"]:
            raise BadOffice("office_name_required")
        if any(len(clean[k]) > LIMITS[k] for k in FIELDS):
            raise BadOffice("office_field_too_long")
        if clean["url"] and not re.match(r"^https?://", clean["url"]):
            raise BadOffice("office_bad_url")
        with self.Session() as db:
            office = db.get(Office, office_id) if office_id is not None else Office()
            if office is None:
                raise LookupError(office_id)
            for key, value in clean.items():
                setattr(office, key, value)
            office.updated_at = utcnow()
            db.add(office)
            db.commit()
            return office

    def delete(self, office_id: int) -> bool:
        with self.Session() as db:
            office = db.get(Office, office_id)
            if office is None:
                return False
            db.delete(office)
            db.commit()
            return True

    def match(self, question: str) -> Match | None:
        """The office with the longest keyword found (as whole words) in the question, if any."""
        text = f" {fold(question)} "
        best: Match | None = None
        best_len = 0
        for office in self.all():
            for raw in re.split(r"[,;\n]", f"{office.keywords_it},{office.keywords_en}"):
                key = fold(raw)
                if key and f" {key} " in text and len(key) > best_len:
                    best, best_len = Match(office, raw.strip()), len(key)
        return best

    def pointer(self, question: str, lang: str) -> str | None:
        """The line a decline adds for the competent office ('Per «multe»: Polizia Locale — …'), or None
        when no office's keywords are in the question (the decline already points to the URP)."""
        found = self.match(question)
        if found is None:
            return None
        return prompts.text(lang, "office_pointer", topic=found.keyword, office=details(found.office, lang))
