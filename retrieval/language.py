"""Which language to answer in: lingua for real sentences, the fallback for anything too short to tell."""

from __future__ import annotations

import re
from functools import lru_cache

from lingua import Language, LanguageDetectorBuilder

from retrieval.limits import LANGUAGE_CHARS
from retrieval.text import fold

_WORD = re.compile(r"[^\W\d_]{2,}", re.UNICODE)
_CODES = {Language.ITALIAN: "it", Language.ENGLISH: "en"}
# No function word is longer (folding a 1000-letter "word" only costs time).
_FUNCTION_WORD_CHARS = 12


@lru_cache(maxsize=1)
def _detector():
    return LanguageDetectorBuilder.from_languages(Language.ITALIAN, Language.ENGLISH).build()


def detect_language(text: str, fallback: str = "it", min_confidence: float = 0.75) -> str:
    """'it' or 'en'. Acronyms (PUMS, ZTL) say nothing about the language, so they are ignored.

    Only the first LANGUAGE_CHARS characters are read: the cost must not grow with the text.
    """
    found = _WORD.findall(text[:LANGUAGE_CHARS])
    words = [w for w in found if not w.isupper()]
    if not words:
        return fallback
    # Function words decide short questions that quote Italian names ("the plans for the Villa
    # Comunale"): lingua weighs the proper nouns, the grammar words tell the asker's language.
    from retrieval.lexical import STOPWORDS

    folded = [fold(w) for w in words if len(w) <= _FUNCTION_WORD_CHARS]
    en_hits = sum(1 for w in folded if w in STOPWORDS["en"] and w not in STOPWORDS["it"])
    it_hits = sum(1 for w in folded if w in STOPWORDS["it"] and w not in STOPWORDS["en"])
    if en_hits >= 2 and it_hits == 0:
        return "en"
    if it_hits >= 2 and en_hits == 0:
        return "it"
    # Names ("City Lab", "City4Age") say nothing about the asker's language either: lingua reads the other
    # words, and a short question made of a function word and names is decided by that word alone.
    content = _without_names(found, words)
    function = STOPWORDS["it"] | STOPWORDS["en"]
    if not [w for w in content if len(w) > _FUNCTION_WORD_CHARS or fold(w) not in function]:
        if min(it_hits, en_hits) == 0 and it_hits != en_hits:
            return "it" if it_hits else "en"
        return fallback  # a name alone: the caller's fallback (the channel's language, the session's)
    values = _detector().compute_language_confidence_values(" ".join(content))
    best = values[0]
    threshold = min_confidence if len(content) >= 3 else 0.9
    if best.value < threshold:
        return fallback
    return _CODES.get(best.language, fallback)


def _without_names(found: list[str], words: list[str]) -> list[str]:
    """A short text's words without its names: capitalised words that are not function words, after the first
    word or in a run ("cos'è City Lab", "City Lab?"). A longer text keeps every word (its sentences outweigh
    the names)."""
    from retrieval.lexical import STOPWORDS

    if len(words) > 8:
        return words
    function = STOPWORDS["it"] | STOPWORDS["en"]

    def capital(w: str) -> bool:
        return w[0].isupper() and not w.isupper() and (len(w) > _FUNCTION_WORD_CHARS or fold(w) not in function)

    names = {i for i, w in enumerate(found) if capital(w) and (i > 0 or (len(found) > 1 and capital(found[1])))}
    return [w for i, w in enumerate(found) if not w.isupper() and i not in names]
