"""Checks every language-model answer must pass before a citizen sees it.

A model may cite a source it was not given, write a number no source contains, drift into
another language or simply not cite. Any of these sends the caller back to the extractive answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from retrieval.language import detect_language

# [1], [1, 2], [1][2], [fonte 1], [source 2]; one or two digits so that "[2025]" stays a number.
CITATION = re.compile(r"\[\s*(?:(?:fonte|fonti|source|sources|src)\s*)?(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\s*\]", re.I)
# A number not glued to letters on its left (programme codes like "M1C1" are names, not quantities).
NUMBER = re.compile(r"(?<![^\W\d_])\d+(?:[.,]\d+)*")
# "1. ", "2) " opening a line: list numbering, not a fact.
LIST_MARKER = re.compile(r"^\s*\d{1,2}[.)]\s+", re.M)
# Quoted wording (often the Italian original inside an English answer) says nothing about the language.
QUOTED = re.compile(r"“[^”]*”|«[^»]*»|\"[^\"]*\"")
# How a model that does not know points the citizen to the office (rule 5 of the system prompt).
URP = re.compile(r"\bURP\b|relazioni con il pubblico|public relations office", re.I)
# A run this long copied from the prompt's own wording is an echo of the instructions, not an answer
# (small models repeat their prompt; the rules even contain "[1]" and "[1][2]").
ECHO_WORDS = 8
PROMPT_TAGS = re.compile(r"</?\s*(fonte|source|domanda|question|conversazione|conversation)\b", re.I)


def citations(text: str) -> list[int]:
    """Every source number cited, in order of appearance (repeats kept)."""
    return [int(n) for m in CITATION.finditer(text) for n in re.split(r"\s*[,;]\s*", m.group(1))]


def number_forms(token: str) -> set[str]:
    """Digits with '.' and ',' ignored (99,39 = 99.39, 15.659.005 = 15659005); '10,00' also as '10'."""
    digits = re.sub(r"[.,]", "", token)
    forms = {digits}
    decimal = re.search(r"[.,](0{1,2})$", token)
    if decimal:
        forms.add(re.sub(r"[.,]", "", token[: decimal.start()]))
    return forms


def numbers(text: str) -> list[str]:
    """Number tokens in a text, without citation markers and list numbering."""
    text = LIST_MARKER.sub(" ", CITATION.sub(" ", text))
    return NUMBER.findall(text)


def _shingles(text: str, size: int = ECHO_WORDS) -> set[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text.lower())
    return {tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


def repeats(text: str, instructions: str) -> bool:
    return bool(_shingles(text) & _shingles(instructions))


def _known_numbers(texts: Iterable[str]) -> set[str]:
    known: set[str] = set()
    for text in texts:
        for token in NUMBER.findall(text):
            known |= number_forms(token)
    return known


@dataclass
class GroundingResult:
    ok: bool
    reason: str | None = None
    cited: list[int] = field(default_factory=list)
    declined: bool = False  # the model said it does not know (no citation, points to the URP)


def check(text: str, sources: dict[int, str], question: str, language: str, instructions: str = "") -> GroundingResult:
    """`sources` maps each given source number to its passage text; `instructions` is the prompt's own wording."""
    body = text.strip()
    if not body:
        return GroundingResult(False, "empty answer")
    if instructions and (repeats(body, instructions) or PROMPT_TAGS.search(body)):
        return GroundingResult(False, "repeats the instructions")
    cited = citations(body)
    unknown = sorted({n for n in cited if n not in sources})
    if unknown:
        return GroundingResult(False, f"cites sources not given: {unknown}", cited)
    declined = not cited and bool(URP.search(body))
    if not cited and not declined:
        return GroundingResult(False, "no citation", cited)
    known = _known_numbers([question, *(sources[n] for n in set(cited))])
    invented = [tok for tok in numbers(body) if not (number_forms(tok) & known)]
    if invented:
        return GroundingResult(False, f"numbers not in the cited sources or the question: {invented[:5]}", cited)
    detected = detect_language(QUOTED.sub(" ", CITATION.sub(" ", body)), fallback=language)
    if detected != language:
        return GroundingResult(False, f"answer is in '{detected}', expected '{language}'", cited)
    return GroundingResult(True, None, cited, declined)
