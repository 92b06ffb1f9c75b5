"""Reviewed English text for the Italian corpus, kept as data beside it (corpus/translations/en/), and
the reviewed Italian of its English-only page (corpus/translations/it/, the same format read the other way:
``source = "en"``).

A passage line is translated by the hash of its normalised Italian text, so re-chunking or moving a
line does not lose its translation and a changed original no longer finds the old one (it is stale).
The lines the corpus loader writes around the documents' own words ("Obiettivo strategico 1.1: …",
"… (attività di sviluppo)") are frames in ``_common.toml``: the words inside are translated once and
the frame wraps them, so the same objective or activity name has one translation wherever it appears.

Only ``status = "approved"`` entries are used; ``pending`` ones await review. Nothing here calls a
model: ``sibyl translate`` (sibyl/backoffice/translate.py) drafts lines and checks them with ``draft_problems``.

Where translations live at run time (``TranslationStore``): the shipped files in
corpus/translations/en/ are read-only (part of the release, reviewed in git), and drafts and
operator-approved lines for uploaded documents go to ``<data_dir>/translations/en/`` in the same
format, layered over them (the data directory wins, line by line). Files rather than the database:
the same format reviewers read in the repository, a drafted file can be copied into the corpus to
ship it, and the data directory already holds what an upload changes (it must be shared by replicas
the same way the corpus folder they upload into is).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock

from retrieval.chunks import body_lines, head_size

COMMON_FILE = "_common.toml"
STATUSES = ("approved", "pending")
# The same rules as retrieval.answer.candidate_lines (not imported: answer.py will use this module).
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-ZÀ-Ý“\"'])")
_BULLET = "-•· "
_LONG = 300
_SECTION_SEP = " › "
_LETTER = re.compile(r"[^\W\d_]")
_SLOT = re.compile(r"\{(\w+)\}")
# Slot kinds: verbatim codes and numbers, or words that are translated in turn.
_SLOT_PATTERNS = {
    "n": r"\d+(?:[./]\d+)*",
    "years": r"\d{4}(?:, \d{4})*",
    "value": r"\d+(?:,\d+)?%?",
    "text": r".+?",
}
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def normalise(text: str) -> str:
    """NFC, whitespace collapsed, trimmed: what the hash and the lookup see."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def source_hash(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]


def has_words(text: str) -> bool:
    """'§3', '/' or '2023' need no translation."""
    return bool(_LETTER.search(text))


@dataclass(frozen=True)
class Entry:
    passage: str
    source_hash: str
    it: str
    en: str
    status: str
    file: str = ""
    note: str = ""  # why a draft needs a careful look (a failed check), shown to the reviewer


@dataclass(frozen=True)
class Frame:
    """A line shape written by the corpus loader, e.g. 'Obiettivo strategico {n}: {text}'."""

    it: str
    en: str
    pattern: re.Pattern = field(compare=False)

    @classmethod
    def of(cls, it: str, en: str) -> Frame:
        if sorted(_SLOT.findall(it)) != sorted(_SLOT.findall(en)):
            raise ValueError(f"frame slots differ: {it!r} / {en!r}")
        parts, pos = [], 0
        for m in _SLOT.finditer(it):
            parts.append(re.escape(it[pos : m.start()]))
            kind = m.group(1).rstrip("0123456789")
            if kind not in _SLOT_PATTERNS:
                raise ValueError(f"unknown slot {{{m.group(1)}}} in frame {it!r}")
            parts.append(f"(?P<{m.group(1)}>{_SLOT_PATTERNS[kind]})")
            pos = m.end()
        parts.append(re.escape(it[pos:]))
        return cls(it, en, re.compile("".join(parts) + r"\Z"))

    def match(self, text: str) -> dict[str, str] | None:
        m = self.pattern.match(text)
        return m.groupdict() if m else None


@dataclass(frozen=True)
class Needed:
    """One source text (Italian; English for the Italian version of an English page) that must have a
    translation, with the first passage it appears in."""

    passage: str
    document: str
    it: str  # the source text

    @property
    def source_hash(self) -> str:
        return source_hash(self.it)


@dataclass
class Coverage:
    needed: list[Needed]
    missing: list[Needed]
    stale: list[Entry]
    orphaned: list[Entry]
    pending: list[Entry]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.stale


def _field(record: Any, name: str) -> Any:
    return record[name] if isinstance(record, Mapping) else getattr(record, name)


def record_lines(record: Any) -> list[str]:
    """Title, section parts and body lines of a passage (bullets stripped), as the answer reads them."""
    section = _field(record, "section")
    body = body_lines(_field(record, "text"), section)
    out = [_field(record, "title"), *section.split(_SECTION_SEP)]
    for line in body:
        line = line.strip().lstrip(_BULLET).strip()
        if line:
            out.append(line)
    return [line for line in out if has_words(line)]


def _bare(text: str) -> str:
    return text.rstrip(" .;")


def split_sentences(line: str) -> list[str]:
    pieces = _SENTENCE.split(line) if len(line) > _LONG else [line]
    return [p.strip() for p in pieces if p.strip()]


def _entries_of(name: str, data: dict, source: str = "it") -> list[Entry]:
    """A file's lines; `source` is the language translated from ("en" for the Italian version of an English
    page, corpus/translations/it/), whose text the hash is of."""
    entries = []
    for row in data.get("line", []):
        entry = Entry(passage=row["passage"], source_hash=row["source_hash"], it=row["it"], en=row.get("en", ""),
                      status=row.get("status", "pending"), file=name, note=row.get("note", ""))
        if entry.status not in STATUSES:
            raise ValueError(f"{name}: status {entry.status!r} of {entry.it!r} is not one of {STATUSES}")
        if source_hash(getattr(entry, source)) != entry.source_hash:
            raise ValueError(f"{name}: source_hash does not match the source text {getattr(entry, source)!r}")
        entries.append(entry)
    return entries


class Translations:
    def __init__(self, entries: Iterable[Entry] = (), frames: Iterable[Frame] = (), keep: Iterable[str] = (),
                 source: str = "it"):
        self.source = source  # the language translated from: "it" (the corpus), or "en" (an English-only page)
        self.target = "en" if source == "it" else "it"
        self.entries: dict[str, Entry] = {}
        for entry in entries:
            if entry.source_hash in self.entries:
                raise ValueError(f"{entry.file}: duplicate translation of {getattr(entry, source)!r}")
            self.entries[entry.source_hash] = entry
        self.frames = list(frames)
        self.keep = list(keep)
        # The same text without its final full stop or semicolon, as plan facts quote names.
        self._loose = {source_hash(_bare(getattr(e, source))): e for e in self.entries.values()}

    @classmethod
    def load(cls, directory: Path, source: str = "it") -> Translations:
        """Every <document>.toml of the folder plus _common.toml (frames, names kept as they are)."""
        directory = Path(directory)
        frames: list[Frame] = []
        keep: list[str] = []
        entries: list[Entry] = []
        if not directory.is_dir():
            return cls(source=source)
        for path in sorted(directory.glob("*.toml")):
            with path.open("rb") as fh:
                data = tomllib.load(fh)
            if path.name == COMMON_FILE:
                frames = [Frame.of(f["it"], f["en"]) for f in data.get("frame", [])]
                keep = list(data.get("keep", []))
                continue
            entries.extend(_entries_of(path.name, data, source))
        return cls(entries, frames, keep, source)

    @classmethod
    def load_layers(cls, *directories: Path, source: str = "it") -> Translations:
        """Several folders, later ones winning line by line (shipped, then the data directory's)."""
        layers = [cls.load(d, source) for d in directories]
        entries: dict[str, Entry] = {}
        keep: dict[str, None] = {}
        for layer in layers:
            entries.update(layer.entries)
            keep.update(dict.fromkeys(layer.keep))
        return cls(entries.values(), [f for layer in layers for f in layer.frames], keep, source)

    # -- lookup -------------------------------------------------------------------------------
    def translate(self, text: str) -> str | None:
        """Approved English for an Italian line (whole, framed, or sentence by sentence); None if any part lacks one.
        (Italian for an English line, in the other direction.)"""
        text = normalise(text)
        if not has_words(text):
            return text
        entry = self.entries.get(source_hash(text))
        if entry is not None and entry.status == "approved" and getattr(entry, self.target).strip():
            return str(getattr(entry, self.target))
        loose = self._loose.get(source_hash(_bare(text)))
        if loose is not None and loose.status == "approved" and getattr(loose, self.target).strip():
            return _bare(getattr(loose, self.target)) + text[len(_bare(text)):]
        if _SECTION_SEP in text:  # a section path: "Area … › Obiettivo …"
            parts = [self.translate(p) for p in text.split(_SECTION_SEP)]
            return _SECTION_SEP.join(p for p in parts if p is not None) if None not in parts else None
        for frame in self.frames:
            slots = frame.match(text)
            if slots is None:
                continue
            values: dict[str, str] = {}
            for name, value in slots.items():
                if name.startswith("text"):
                    translated = self.translate(value)
                    if translated is None:
                        break
                    value = translated
                elif name.startswith("value"):
                    value = re.sub(r"(\d),(\d)", r"\1.\2", value)  # 87,5% -> 87.5%
                values[name] = value
            else:
                def fill(m: re.Match[str], v: dict[str, str] = values) -> str:
                    return v[m.group(1)]

                return _SLOT.sub(fill, frame.en)
        # Sentence by sentence, at any length: a framed slot can be shorter than the line that was split.
        pieces = [p.strip() for p in _SENTENCE.split(text) if p.strip()]
        if len(pieces) > 1:
            english = [self.translate(p) for p in pieces]
            if all(e is not None for e in english):
                return " ".join(e for e in english if e is not None)
        return None

    def translate_record(self, record: Any) -> dict[str, str] | None:
        """The passage's title, section and text in English, same line layout; None if a line is missing."""
        title = self.translate(_field(record, "title"))
        section = _field(record, "section")
        en_section = self.translate(section)
        if title is None or en_section is None:
            return None
        lines = _field(record, "text").split("\n")
        head = head_size(section)
        body = []
        for line in lines[head:]:
            stripped = line.strip()
            bullet = stripped[: len(stripped) - len(stripped.lstrip(_BULLET))]
            en = self.translate(stripped[len(bullet):]) if stripped else ""
            if en is None:
                return None
            body.append(bullet + en)
        text = "\n".join([title, *([en_section] if head == 2 else []), *body])
        return {"title": title, "section": en_section, "text": text}

    # -- what the corpus needs ----------------------------------------------------------------
    def pieces(self, line: str) -> list[str]:
        """The texts a line needs translated: the words inside a frame, long prose sentence by sentence."""
        out: list[str] = []
        for sentence in split_sentences(normalise(line)):
            out.extend(self._frame_pieces(sentence))
        return out

    def _frame_pieces(self, text: str) -> list[str]:
        if not has_words(text):
            return []
        for frame in self.frames:
            slots = frame.match(text)
            if slots is not None:
                out: list[str] = []
                for name, value in slots.items():
                    if name.startswith("text"):
                        out.extend(self.pieces(value))
                return out
        return [text]

    def needed(self, records: Iterable[Any]) -> list[Needed]:
        """Every distinct source text (Italian; or English, translating English pages) of the passages in the
        source language, in corpus order."""
        seen: set[str] = set()
        out: list[Needed] = []
        for record in records:
            if (_field(record, "language") == "en") != (self.source == "en"):
                continue
            for line in record_lines(record):
                for piece in self.pieces(line):
                    h = source_hash(piece)
                    if h not in seen:
                        seen.add(h)
                        out.append(Needed(_field(record, "id"), _field(record, "document"), piece))
        return out

    def coverage(self, records: Iterable[Any]) -> Coverage:
        """Missing (no approved entry), stale (its passage exists but no longer has that text), orphaned, pending.

        An entry may also translate part of a line ("Investimenti" of "Investimenti: 15659005") for facts
        that quote it; it stays current while its passage contains those words.
        """
        records = list(records)
        needed = self.needed(records)
        by_passage: dict[str, set[str]] = {}
        wording: dict[str, str] = {}
        for record in records:
            hashes = by_passage.setdefault(_field(record, "id"), set())
            for line in record_lines(record):
                hashes.update(source_hash(p) for p in self.pieces(line))
            wording[_field(record, "id")] = normalise(" ".join(record_lines(record)))
        missing = [n for n in needed if self.entries.get(n.source_hash) is None
                   or self.entries[n.source_hash].status != "approved"
                   or not getattr(self.entries[n.source_hash], self.target).strip()]
        # Current: one of the passage's texts, or words it still contains (a name a plan fact quotes).
        stale = [e for e in self.entries.values()
                 if e.passage in by_passage and e.source_hash not in by_passage[e.passage]
                 and normalise(getattr(e, self.source)) not in wording[e.passage]]
        orphaned = [e for e in self.entries.values() if e.passage not in by_passage]
        pending = [e for e in self.entries.values() if e.status == "pending"]
        return Coverage(needed, missing, stale, orphaned, pending)

    def missing(self, records: Iterable[Any]) -> list[Needed]:
        return self.coverage(records).missing

    def stale(self, records: Iterable[Any]) -> list[Entry]:
        return self.coverage(records).stale


# -- writing ---------------------------------------------------------------------------------
def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string, but for DEL, which TOML wants escaped too.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def dump_entries(entries: Iterable[Entry], header: str = "") -> str:
    """A <document>.toml file: one [[line]] table per entry, in the given order."""
    out = [f"# {line}".rstrip() for line in header.splitlines()]
    for e in entries:
        out += ["", "[[line]]", f"passage = {_toml_string(e.passage)}", f"source_hash = {_toml_string(e.source_hash)}",
                f"it = {_toml_string(e.it)}", f"en = {_toml_string(e.en)}", f"status = {_toml_string(e.status)}"]
        if e.note:
            out.append(f"note = {_toml_string(e.note)}")
    return "\n".join(out).lstrip("\n") + "\n"


def write_skeleton(translations: Translations, records: Iterable[Any], directory: Path,
                   prune: bool = False) -> dict[str, int]:
    """Append every needed text that has no entry yet, as pending with an empty English, to its document's file.

    Existing entries (and their order) are kept, unless ``prune`` drops the stale and orphaned ones;
    returns how many entries each rewritten file gained (negative: lost).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    records = list(records)
    dropped: set[str] = set()
    if prune:
        coverage = translations.coverage(records)
        dropped = {e.source_hash for e in [*coverage.stale, *coverage.orphaned]}
    by_file: dict[str, list[Entry]] = {}
    added: dict[str, int] = {}
    for entry in translations.entries.values():
        if entry.source_hash in dropped:
            added[entry.file] = added.get(entry.file, 0) - 1
            continue
        by_file.setdefault(entry.file, []).append(entry)
    for need in translations.needed(records):
        if need.source_hash in translations.entries:
            continue
        name = f"{need.document}.toml"
        by_file.setdefault(name, []).append(Entry(need.passage, need.source_hash, need.it, "", "pending", name))
        added[name] = added.get(name, 0) + 1
    for name in added:
        if not by_file.get(name):
            (directory / name).unlink(missing_ok=True)
            continue
        header = (f"English text of {name[:-5]}: one [[line]] per Italian text, found by source_hash (sha256 of the\n"
                  "normalised Italian, 16 hex). Only status = \"approved\" lines are used in answers.")
        (directory / name).write_text(dump_entries(by_file[name], header), encoding="utf-8")
    return added


# -- fidelity --------------------------------------------------------------------------------
def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Accent-folded Italian function words (the citizen scorer's list, without words English shares).
IT_FUNCTION_WORDS = _wordset("""
il lo la gli le un uno una di del dello della dei degli delle al allo alla ai agli
alle da dal dallo dalla dai dagli dalle nel nello nella nei negli nelle sul sullo
sulla sui sugli sulle con per tra fra e ed o che non sono ha hanno anche piu ma se
questo questa questi queste quello quella quelle quelli ci si cui dove quando perche
ogni tutti tutte essere stato stata stati sia gia molto ancora sempre secondo ecco
l' dell' all' dall' nell' sull' un' quest' c' d' quell' tutto
""")
EN_FUNCTION_WORDS = _wordset("""
the of and to is are was were be been for with on at by from this that these those
it its an as or not but which who what where when how there their they we you your
our will would can could should has have had does do did into about than also more
all any some if so such other only here according been being he she his her them
""")
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*'?")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).replace("\u2019", "'")
    return text.lower()


def function_words(text: str) -> tuple[int, int]:
    """(Italian, English) function words in the text."""
    it = en = 0
    for tok in _TOKEN.findall(_fold(text)):
        if tok in IT_FUNCTION_WORDS:
            it += 1
        elif tok in EN_FUNCTION_WORDS:
            en += 1
    return it, en


def numbers(text: str) -> list[str]:
    """Digit groups with thousand/decimal separators dropped: '15.659.005' and '15,659,005' are equal."""
    return sorted(re.sub(r"[.,]", "", m) for m in _NUMBER.findall(text))


_CAPS_RUN = re.compile(r"\b[A-Z][A-Z0-9']*(?:[^\w]+[A-Z][A-Z0-9']*\b){2,}")


def acronyms(text: str) -> set[str]:
    """Upper-case codes (ZTL, PEBA, M5C2), not words of a heading written in capitals ("PROGETTI ED INTERVENTI")."""
    letters = [c for c in text if c.isalpha()]
    if not letters or sum(c.isupper() for c in letters) / len(letters) > 0.5:
        return set()
    text = _CAPS_RUN.sub(" ", text)
    return {t for t in re.findall(r"\b[A-Z][A-Z0-9]+\b", text) if sum(c.isalpha() for c in t) >= 2}


def _name_in(name: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(_fold(name))}(?!\w)", _fold(text)) is not None


def fidelity_problems(it: str, en: str, keep: Iterable[str] = ()) -> list[str]:
    """What a translation changed that it must not: numbers, names kept as they are, codes."""
    problems = []
    if numbers(it) != numbers(en):
        problems.append(f"numbers differ: {numbers(it)} vs {numbers(en)}")
    for name in keep:
        if _name_in(name, it) and not _name_in(name, en):
            problems.append(f"name {name!r} not kept")
    for code in sorted(acronyms(it)):
        if not re.search(rf"(?<![A-Za-z0-9]){re.escape(code)}(?![A-Za-z0-9])", en):
            problems.append(f"code {code!r} not kept")
    return problems


_QUOTED = re.compile(r"“[^”]*”|\"[^\"]*\"")


def italian_left(en: str, keep: Iterable[str] = ()) -> tuple[int, int]:
    """(Italian, English) function words of an English text, names kept in Italian and quoted titles left out."""
    text = _QUOTED.sub(" ", en)
    for name in sorted(keep, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", " ", text, flags=re.IGNORECASE)
    return function_words(text)


@dataclass(frozen=True)
class Problem:
    """One thing a draft got wrong. ``kind`` names the console text; blocking ones stop an approval."""

    kind: str  # empty | numbers | name | code | italian
    values: dict = field(default_factory=dict, compare=False)

    @property
    def blocking(self) -> bool:
        return self.kind != "italian"

    @property
    def message(self) -> str:
        v = self.values
        return {"empty": "empty translation",
                "numbers": f"numbers differ: {v.get('it')} vs {v.get('en')}",
                "name": f"name {v.get('name')!r} not kept",
                "code": f"code {v.get('code')!r} not kept",
                "italian": f"Italian words left ({v.get('it')} Italian, {v.get('en')} English function words)",
                }.get(self.kind, self.kind)


def draft_problems(it: str, en: str, keep: Iterable[str] = ()) -> list[Problem]:
    """The checks a draft (model or operator) must pass: the same numbers, names and codes as the
    original (blocking), and no Italian left (a warning: quoted titles and names may stay Italian)."""
    if not en.strip():
        return [Problem("empty")]
    problems = []
    if numbers(it) != numbers(en):
        problems.append(Problem("numbers", {"it": " ".join(numbers(it)) or "-", "en": " ".join(numbers(en)) or "-"}))
    for name in keep:
        if _name_in(name, it) and not _name_in(name, en):
            problems.append(Problem("name", {"name": name}))
    for code in sorted(acronyms(it)):
        if not re.search(rf"(?<![A-Za-z0-9]){re.escape(code)}(?![A-Za-z0-9])", en):
            problems.append(Problem("code", {"code": code}))
    it_words, en_words = italian_left(en, keep)
    if it_words > 1 and it_words > 0.2 * en_words:
        problems.append(Problem("italian", {"it": it_words, "en": en_words}))
    return problems


def names_in(text: str, keep: Iterable[str]) -> list[str]:
    """The kept names and codes a line contains (what a translator is told to leave as they are)."""
    found = [name for name in keep if _name_in(name, text)]
    return found + sorted(acronyms(text) - set(found))


# -- the run-time store ---------------------------------------------------------------------------
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.toml")


class TranslationStore:
    """The translations a running service uses: the shipped folder under the writable one.

    ``current()`` (or calling the store: it is the answer code's provider) returns the loaded
    ``Translations`` and reloads it when a file changed (an approval in the console, ``sibyl
    translate``, another worker process), looking at most every ``check_seconds``; this process's own
    writes reload at once. Writes replace a whole file atomically under a file lock, so workers and
    the command line can write the same folder.
    """

    def __init__(self, shipped: Path, writable: Path, check_seconds: float = 1.0, source: str = "it") -> None:
        self.shipped = Path(shipped)
        self.writable = Path(writable)
        self.check_seconds = check_seconds
        self.source = source
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        self._signature: tuple = ()
        self._current = Translations(source=source)
        self._own = Translations(source=source)
        self.reload()

    @classmethod
    def under(cls, corpus_dir: Path, data_dir: Path, language: str = "en", check_seconds: float = 1.0
              ) -> TranslationStore:
        """<corpus>/translations/<lang> (shipped) under <data_dir>/translations/<lang> (drafts, approvals): English
        of the Italian corpus, or ("it") Italian of its English-only pages."""
        return cls(Path(corpus_dir) / "translations" / language, Path(data_dir) / "translations" / language,
                   check_seconds, "it" if language == "en" else "en")

    def _files(self) -> tuple:
        out = []
        for folder in (self.shipped, self.writable):
            if folder.is_dir():
                for path in sorted(folder.glob("*.toml")):
                    try:
                        st = path.stat()
                    except FileNotFoundError:  # replaced between glob and stat: seen next time
                        continue
                    out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload(self) -> Translations:
        with self._lock:
            signature = self._files()
            own = Translations.load(self.writable, self.source)
            current = Translations.load_layers(self.shipped, self.writable, source=self.source)
            self._own, self._current, self._signature = own, current, signature
            self._checked = time.monotonic()
            return current

    def current(self) -> Translations:
        if time.monotonic() - self._checked >= self.check_seconds:
            self._checked = time.monotonic()
            if self._files() != self._signature:
                return self.reload()
        return self._current

    __call__ = current

    def own(self, source_hash_: str) -> Entry | None:
        """The writable folder's entry for a text (None for a shipped-only or unknown line)."""
        self.current()
        return self._own.entries.get(source_hash_)

    # -- writes --------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if not _FILE_NAME.fullmatch(name) or name == COMMON_FILE:
            raise ValueError(f"not a translation file name: {name!r}")
        return self.writable / name

    def _rewrite(self, name: str, change) -> None:
        """Read one file fresh, let ``change`` edit its entries (a dict by hash, in order), write it back."""
        path = self._path(name)
        self.writable.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.writable / ".write.lock"), timeout=30):
            entries: dict[str, Entry] = {}
            if path.exists():
                with path.open("rb") as fh:
                    entries = {e.source_hash: e for e in _entries_of(name, tomllib.load(fh), self.source)}
            change(entries)
            if entries:
                header = (f"Drafted and reviewed English text of {name[:-5]} (sibyl translate, operator console),\n"
                          "layered over the shipped translations. Only status = \"approved\" lines are used.")
                tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.part")
                tmp.write_text(dump_entries(entries.values(), header), encoding="utf-8")
                os.replace(tmp, path)
            else:
                path.unlink(missing_ok=True)
        self.reload()

    def put(self, entries: Iterable[Entry]) -> None:
        """Add or replace lines (by source hash) in the writable folder, each in its entry's file."""
        by_file: dict[str, list[Entry]] = {}
        for entry in entries:
            if source_hash(getattr(entry, self.source)) != entry.source_hash or entry.status not in STATUSES:
                raise ValueError(f"bad translation entry for {getattr(entry, self.source)!r}")
            by_file.setdefault(entry.file, []).append(entry)
        for name, items in by_file.items():
            self._rewrite(name, lambda d, items=items: d.update({e.source_hash: e for e in items}))

    def remove(self, source_hash_: str) -> Entry | None:
        """Drop a line from the writable folder (a rejected draft); the shipped one, if any, shows again."""
        entry = self.own(source_hash_)
        if entry is None:
            return None
        self._rewrite(entry.file, lambda d: d.pop(source_hash_, None))
        return entry
