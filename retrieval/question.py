"""What a question asks for: overview, planned (and when), status, rank, quantity, who/when/where, yes/no.

Small explicit rules over word lists kept as data (retrieval/question.toml, Italian and English);
no model call, a few regex searches per question. The composer uses the result to pick the lead
sentence and the facts it is built from.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from retrieval.text import fold

QUESTION_WORDS = Path(__file__).with_name("question.toml")
KINDS = ("rank", "quantity", "who", "when", "where", "status", "planned", "yesno", "overview")
# When several kinds match, the most specific one leads the answer.
PRIORITY = ("rank", "quantity", "who", "when", "where", "status", "planned", "yesno", "overview")
_YEAR = re.compile(r"\b(20[12]\d)\b")
_ARTICLES = {"la", "le", "lo", "il", "i", "l'"}
FRAGMENT_WORDS = 4  # a message this short after an answer is its follow-up (is_fragment)


@dataclass(frozen=True)
class Analysis:
    kind: str
    kinds: tuple[str, ...] = field(default_factory=tuple)
    year: int | None = None
    frame: str = ""  # a follow-up's previous question, whose framing words (how much, which area…) still apply

    def has(self, kind: str) -> bool:
        return kind in self.kinds

    def without(self, *drop: str) -> Analysis:
        """The same analysis minus some kinds (the composer, once it has said what it cannot give)."""
        kinds = tuple(k for k in self.kinds if k not in drop) or ("overview",)
        return Analysis(kinds[0], kinds, self.year, self.frame)

    def following(self, previous: str) -> Analysis:
        """A follow-up of a few words ("e il commercio?" after "quanto ha preso il turismo nel 2023?") asks
        what its previous question asked, about its new topic: that question's kinds and year carry over."""
        before = analyse(previous)
        kinds = tuple(k for k in PRIORITY if k != "overview" and (self.has(k) or before.has(k))) or ("overview",)
        return Analysis(kinds[0], kinds, self.year or before.year, previous)

    def words(self, question: str) -> str:
        """The text a framing-word test reads: the question, after its previous one for a follow-up."""
        return f"{self.frame} {question}" if self.frame else question


@lru_cache(maxsize=2)
def _patterns(path: Path = QUESTION_WORDS) -> dict[str, re.Pattern]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    out = {}
    for kind in KINDS:
        terms = [fold(t) for lang in ("it", "en") for t in data.get(kind, {}).get(lang, [])]
        terms.sort(key=len, reverse=True)
        body = "|".join(re.escape(t) for t in terms)
        if kind == "yesno":  # an opening word, after an optional conjunction
            out[kind] = re.compile(r"^(?:(?:ma|e|so|and|but)\s+)?(?:" + body + r")(?!\w)")
        else:
            out[kind] = re.compile(r"(?<!\w)(?:" + body + r")(?!\w)")
    return out


def analyse(question: str) -> Analysis:
    """Kinds the question matches, the leading one first; 'overview' when nothing else does."""
    text = fold(re.sub(r"^\s*[èÈ](?!\w)", "e'", question)).strip()  # "è…?" asks; "e…?" (and) need not
    patterns = _patterns()
    kinds = [k for k in PRIORITY if patterns[k].search(text)]
    opening = patterns["yesno"].match(text)
    if opening and opening.group(0).split()[-1] in _ARTICLES:
        joined = len(opening.group(0).split()) > 1  # "e lo sport?", "ma il pums?": after a conjunction
        if len(text.split()) <= (FRAGMENT_WORDS if joined else 2):
            kinds.remove("yesno")  # a follow-up naming a topic, not a question to answer yes or no
    year = _YEAR.search(text)
    year_value = int(year.group(1)) if year else None
    if year_value and year_value >= 2025 and "planned" not in kinds:
        kinds.append("planned")
    if "yesno" in kinds and any(k in kinds for k in ("who", "when", "where")):
        kinds.remove("yesno")
    kinds = sorted(set(kinds), key=PRIORITY.index)
    lead = kinds[0] if kinds else "overview"
    return Analysis(lead, tuple(kinds) or ("overview",), year_value)


@lru_cache(maxsize=2)
def _service_patterns(path: Path = QUESTION_WORDS) -> tuple[dict[str, re.Pattern], re.Pattern]:
    with path.open("rb") as fh:
        data = tomllib.load(fh).get("service", {})
    by_lang = {}
    for lang in ("it", "en"):
        terms = sorted((fold(t) for t in data.get(lang, [])), key=len, reverse=True)
        by_lang[lang] = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)")
    places = "|".join(re.escape(fold(t)) for t in data.get("place", []))
    # "viale della Libertà": the name is the word after the preposition, not "della".
    linking = "|".join(re.escape(fold(t)) for t in sorted(data.get("place_linking", []), key=len, reverse=True))
    return by_lang, re.compile(r"(?<!\w)(?:" + places + r")\s+(?:(?:" + linking + r")(?:\s+|(?<=')))?([\w']+)")


def question_part(question: str) -> str:
    """The question without a remark after its last question mark ("…a Lecce? in viale X è un inferno"):
    a street or a name in the remark is context, not what must be found."""
    head, mark, tail = question.rpartition("?")
    asks = len(re.findall(r"\w+", head)) >= 3  # "ciao? lavori in via Roma…": the question is the tail
    return head + mark if mark and tail.strip() and asks else question


def required_focus(question: str, language: str) -> list[str]:
    """Phrases the documents must name for the question to be answerable: a desk-service request
    (opening hours, a fine, a certificate, a collection day, the weather) anywhere in the message, or a
    street/place name in the question itself."""
    text = fold(question)
    by_lang, place = _service_patterns()
    found = [m.group(0) for m in by_lang.get(language, by_lang["it"]).finditer(text)]
    found += [m.group(1).strip() for m in place.finditer(fold(question_part(question)))]
    return found


@lru_cache(maxsize=2)
def _word_patterns(path: Path = QUESTION_WORDS) -> dict[str, re.Pattern]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    out = {}
    for name in ("rank_low", "rank_high", "achievement", "head_count", "future"):
        terms = [fold(t) for lang in ("it", "en") for t in data.get(name, {}).get(lang, [])]
        out[name] = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(t) for t in terms) + r")(?!\w)")
    return out


def rank_direction(question: str) -> str:
    """'low', 'high' (best, or which reached 100%) for a ranking question; 'high' when unsaid."""
    text = fold(question)
    for name in ("rank_low", "rank_high"):
        if _word_patterns()[name].search(text):
            return name.removeprefix("rank_")
    return "high"


def asks(frame: str, question: str) -> bool:
    """Whether a question uses one of the framing word lists of question.toml: "achievement" (how far the plan
    got, which an area's 2023 average answers; not "how much is the tax"), "future" ("when will…", which no
    2023 result dates), "head_count" ("how many people took part?", not a euro amount)."""
    return bool(_word_patterns()[frame].search(fold(question)))


def asks_achievement(question: str) -> bool:
    return asks("achievement", question)


def is_fragment(message: str) -> bool:
    """A message of a few words: after an answer, its follow-up ("e il commercio?")."""
    return len(message.split()) <= FRAGMENT_WORDS


_PROPER = re.compile(r"(?<=[\w,;:] )([A-ZÀ-Ý][a-zà-ÿ]{3,})\b")


def proper_names(question: str) -> list[str]:
    """Capitalised words inside the question (a city, a person, a street): candidates for required focus."""
    return _PROPER.findall(question_part(question))
