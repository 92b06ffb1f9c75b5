"""The inline buttons' callback data: one codec for every button the bot sends.

Telegram gives back whatever string a button carried (at most 64 bytes), and anyone can send any
string, so the data is only a pointer: the stored answer's id plus, for a vote, the rating and, for a
suggested question, its position. The answer itself is read back from the store (and checked to belong
to the chat) by bot/handlers/callbacks.py.

Wire format (unchanged since the first release, so keyboards already in chats keep working):
``src:<message id>``, ``fb:+1:<message id>`` / ``fb:-1:<message id>``, ``sq:<index>:<message id>``;
``hp:a|y|n:<message id>`` (talk to a person: ask, yes, no; issue 15); ``urp:<message id>`` (the URP's contacts
under a decline; issue 17).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

MAX_BYTES = 64  # Bot API limit for callback_data
MESSAGE_ID = re.compile(r"[0-9A-Za-z_-]{1,58}")  # the store's ids are uuid4 hex; never ':' (the separator)
MAX_SUGGESTIONS = 100
_PATTERN = re.compile(r"src:(?P<src>[^:]+)"
                      r"|fb:(?P<rating>[+-]1):(?P<fb>[^:]+)"
                      r"|sq:(?P<index>0|[1-9][0-9]?):(?P<sq>[^:]+)"
                      r"|hp:(?P<step>[ayn]):(?P<hp>[^:]+)"
                      r"|urp:(?P<urp>[^:]+)")


@dataclass(frozen=True)
class ShowSources:
    """📄 Sources: send the numbered sources of an answer."""

    message_id: str


@dataclass(frozen=True)
class Vote:
    """👍 / 👎 on an answer."""

    message_id: str
    rating: Literal[1, -1]


@dataclass(frozen=True)
class AskSuggestion:
    """A suggested question: the button's own text is the question (read from the keyboard)."""

    message_id: str
    index: int


@dataclass(frozen=True)
class Handoff:
    """🙋 Talk to a person (issue 15): `a` asks the citizen to confirm, `y` opens the case, `n` drops it."""

    message_id: str
    step: Literal["a", "y", "n"]


@dataclass(frozen=True)
class ShowUrp:
    """🏛️ URP under a decline (issue 17): the URP's contacts, and the offer of a person (issue 15)."""

    message_id: str


ButtonData = ShowSources | Vote | AskSuggestion | Handoff | ShowUrp


def encode(data: ButtonData) -> str:
    """The callback_data string for a button; ValueError if it cannot be decoded back or is over 64 bytes."""
    if not MESSAGE_ID.fullmatch(data.message_id):
        raise ValueError(f"not a storable message id for a button: {data.message_id!r}")
    if isinstance(data, ShowSources):
        raw = f"src:{data.message_id}"
    elif isinstance(data, Vote):
        if data.rating not in (1, -1):
            raise ValueError(f"a vote is +1 or -1, not {data.rating!r}")
        raw = f"fb:{data.rating:+d}:{data.message_id}"
    elif isinstance(data, Handoff):
        if data.step not in ("a", "y", "n"):
            raise ValueError(f"a handoff step is a, y or n, not {data.step!r}")
        raw = f"hp:{data.step}:{data.message_id}"
    elif isinstance(data, ShowUrp):
        raw = f"urp:{data.message_id}"
    else:
        if not 0 <= data.index < MAX_SUGGESTIONS:
            raise ValueError(f"suggestion index out of range: {data.index!r}")
        raw = f"sq:{data.index}:{data.message_id}"
    if len(raw.encode()) > MAX_BYTES:
        raise ValueError(f"callback data over {MAX_BYTES} bytes: {raw!r}")
    return raw


def decode(raw: object) -> ButtonData | None:
    """The button a callback_data string stands for, or None for anything malformed, foreign or forged
    (any string, None or a non-string; never raises)."""
    if not isinstance(raw, str) or len(raw) > MAX_BYTES:
        return None
    match = _PATTERN.fullmatch(raw)
    if match is None:
        return None
    groups = match.groupdict()
    message_id = groups["src"] or groups["fb"] or groups["sq"] or groups["hp"] or groups["urp"]
    if not MESSAGE_ID.fullmatch(message_id):
        return None
    if groups["hp"]:
        return Handoff(message_id, "a" if groups["step"] == "a" else "y" if groups["step"] == "y" else "n")
    if groups["urp"]:
        return ShowUrp(message_id)
    if groups["src"]:
        return ShowSources(message_id)
    if groups["fb"]:
        return Vote(message_id, 1 if groups["rating"] == "+1" else -1)
    return AskSuggestion(message_id, int(groups["index"]))
