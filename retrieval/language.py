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
# A word ending in an accented vowel: Italian (città, è, perché, più), never English.
_FINAL_ACCENT = re.compile(r"[àèéìòù](?!\w)")


@lru_cache(maxsize=1)
def _detector():
    return LanguageDetectorBuilder.from_languages(Language.ITALIAN, Language.ENGLISH).build()


def warm_language_detector() -> None:
    """Load lingua's models now: the first unsure question otherwise pays about 0.4 s of CPU, holding the GIL
    (every other request of that worker waits)."""
    _detector().compute_language_confidence_values("Lecce")


@lru_cache(maxsize=1)
def _function_words() -> tuple[frozenset[str], frozenset[str]]:
    """(English-only, Italian-only) function words, folded: the sets are built once, not per question."""
    from retrieval.lexical import STOPWORDS

    return frozenset(STOPWORDS["en"] - STOPWORDS["it"]), frozenset(STOPWORDS["it"] - STOPWORDS["en"])


def _quick_guess(head: str, words: list[str], it_hits: int, en_hits: int) -> str | None:
    """The common case in microseconds, None when unsure (then lingua decides, ~1-10 ms).

    Function words of one language only decide; a final accented vowel (città, è, perché) or lower-case
    words ending in a/i/o back a single Italian one, words ending in a consonant a single English one.
    Capitalised words (names, "Villa Comunale") never vote, so a name alone is left to the fallback.
    """
    if en_hits >= 2 and it_hits == 0:
        return "en"
    if it_hits >= 2 and en_hits == 0:
        return "it"
    if it_hits and en_hits:
        return None
    from retrieval.lexical import ALL_STOPWORDS

    content = [w for w in words if w.islower() and len(w) >= 3 and w.isascii() and w not in ALL_STOPWORDS]
    italian = sum(1 for w in content if w[-1] in "aio")
    english = sum(1 for w in content if w[-1] not in "aeiou")
    accent = _FINAL_ACCENT.search(head) is not None
    if it_hits and en_hits == 0 and english == 0 and (accent or italian >= 2):
        return "it"
    if en_hits and it_hits == 0 and not accent and italian == 0 and english >= 2:
        return "en"
    if it_hits == en_hits == 0 and english == 0 and italian >= 2:
        return "it"
    if it_hits == en_hits == 0 and not accent and italian == 0 and english >= 3:
        return "en"
    return None


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

    en_only, it_only = _function_words()
    folded = [w.lower() if w.isascii() else fold(w) for w in words if len(w) <= _FUNCTION_WORD_CHARS]
    en_hits = sum(1 for w in folded if w in en_only)
    it_hits = sum(1 for w in folded if w in it_only)
    quick = _quick_guess(text[:LANGUAGE_CHARS], words, it_hits, en_hits)
    if quick:
        return quick
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
