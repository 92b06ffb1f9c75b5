"""Telegram HTML rendering and the 4,096-character splitter (no network, no index)."""

from __future__ import annotations

import html
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import render
from bot.app import api_urls
from bot.handlers.messages import addressed_text
from tests.telegram_peer import TelegramHTMLError, parse_telegram_html


def _check(parts: list[str], original: str, limit: int) -> None:
    assert parts
    for part in parts:
        assert render.utf16_len(part) <= limit
        assert parse_telegram_html(part).strip()  # balanced, Telegram's tags only, not empty
    words = lambda s: parse_telegram_html(s).split()  # noqa: E731
    assert [w for p in parts for w in words(p)] == words(original) or \
        "".join(w for p in parts for w in words(p)) == "".join(words(original))


def test_short_text_is_one_message():
    assert render.split_html("<b>ciao</b>") == ["<b>ciao</b>"]
    assert render.split_html("   \n ") == []


def test_splits_at_line_boundaries():
    lines = [f"- riga {i} con &amp; e <b>[{i}]</b>" for i in range(400)]
    text = "\n".join(lines)
    parts = render.split_html(text, 1000)
    _check(parts, text, 1000)
    for part in parts:  # every part is whole lines
        for line in part.split("\n"):
            assert line in lines


def test_tags_spanning_a_cut_are_closed_and_reopened_with_their_attributes():
    body = "\n".join(f"passaggio {i} " + "parola " * 20 for i in range(60))
    text = f"<b>Fonti</b>\n<blockquote expandable>{body}</blockquote>\n<i>fine</i>"
    parts = render.split_html(text, 900)
    _check(parts, text, 900)
    assert len(parts) > 2
    for part in parts[1:-1]:
        assert part.startswith("<blockquote expandable>") and part.endswith("</blockquote>")


def test_a_single_line_longer_than_the_limit_is_cut_between_words_never_inside_tags_or_entities():
    line = " ".join(f"<i>parola{i}</i> &amp; &lt;{i}&gt;" for i in range(800))
    parts = render.split_html(line, 500)
    _check(parts, line, 500)
    assert all(not p.rstrip().endswith("&") and "&am\n" not in p for p in parts)


def test_utf16_length_counts_emoji_as_two():
    text = "\n".join(["😀" * 100] * 30)  # 3,000 characters, 6,000 UTF-16 units
    parts = render.split_html(text, 4096)
    assert len(parts) == 2
    assert all(render.utf16_len(p) <= 4096 for p in parts)


@pytest.mark.parametrize("seed", range(20))
def test_random_nested_html_stays_balanced(seed):
    rng = random.Random(seed)
    chunks = []
    for _ in range(rng.randint(50, 300)):
        word = html.escape(rng.choice(["Lecce", "mobilità", "<tag>", "a&b", "😀", "x" * rng.randint(1, 50)]))
        tag = rng.choice([None, "b", "i", "u", "code", "blockquote expandable", 'a href="https://x.it/?a=1&amp;b=2"'])
        if tag:
            name = tag.split()[0]
            word = f"<{tag}>{word}</{name}>"
        chunks.append(word + rng.choice([" ", "\n", "  ", ""]))
    text = "<b>" + "".join(chunks) + "</b>"
    limit = rng.choice([120, 300, 1000])
    _check(render.split_html(text, limit), text, limit)


def test_the_peer_rejects_what_telegram_rejects():
    for bad in ("<b>open", "<div>x</div>", "a & b", "<b><i>x</b></i>"):
        with pytest.raises(TelegramHTMLError):
            parse_telegram_html(bad)


def test_answer_html_escapes_everything_and_marks_citations():
    payload = {"language": "it", "answer": "Secondo <script>alert(1)</script> & co:\n\n- riga [1]\n\nFonti:\n[1] T › S"}
    out = render.answer_html(payload, asked="<b>?</b>")
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp; co" in out
    assert "<b>[1]</b>" in out and "<b>Fonti:</b>" in out
    assert out.startswith("<i>❓ &lt;b&gt;?&lt;/b&gt;</i>")
    parse_telegram_html(out)


def test_sources_html_shows_document_section_passage():
    sources = [{"n": 1, "id": "d:1", "document": "dup", "title": "DUP 2025-2027", "section": "Area 4 <mobilità>",
                "text": "DUP 2025-2027\nArea 4 <mobilità>\nObiettivo: bus & bici", "score": 1.0}]
    out = render.sources_html(sources, "en")
    assert "<b>[1] DUP 2025-2027</b>" in out and "Area 4 &lt;mobilità&gt;" in out
    assert "<blockquote expandable>Obiettivo: bus &amp; bici</blockquote>" in out
    assert out.count("DUP 2025-2027") == 1  # the passage's own title line is not repeated
    parse_telegram_html(out)


def test_keyboard_callback_data_fits_64_bytes():
    payload = {"message_id": "f" * 32, "language": "en", "sources": [{"n": 1}],
               "suggestions": ["What does the DUP 2025-2027 plan for the area «" + "x" * 200 + "»?"] * 3}
    rows = render.answer_keyboard(payload).inline_keyboard
    assert [b.text for b in rows[0]] == ["📄 Sources", "👍", "👎"]
    assert len(rows) == 4
    assert all(len(b.callback_data.encode()) <= 64 for row in rows for b in row)
    with pytest.raises(ValueError):
        render.answer_keyboard({**payload, "message_id": "x" * 70})


def test_api_urls():
    assert api_urls(None) == {}
    assert api_urls("http://127.0.0.1:8081/") == {"base_url": "http://127.0.0.1:8081/bot",
                                                  "base_file_url": "http://127.0.0.1:8081/file/bot"}
    assert api_urls("https://tg.example/bot")["base_url"] == "https://tg.example/bot"


def test_group_addressing():
    from telegram import Message

    def msg(text, chat_type="group", entities=None, reply_from=None):
        data = {"message_id": 1, "date": 0, "chat": {"id": -5 if chat_type != "private" else 5, "type": chat_type},
                "from": {"id": 9, "is_bot": False, "first_name": "A"}, "text": text}
        if entities:
            data["entities"] = entities
        if reply_from:
            data["reply_to_message"] = {"message_id": 0, "date": 0, "chat": data["chat"], "from": reply_from,
                                        "text": "prima"}
        return Message.de_json(data, None)

    bot = {"id": 77, "is_bot": True, "first_name": "Sibyl", "username": "SibylBot"}
    assert addressed_text(msg("ciao", "private"), 77, "SibylBot") == "ciao"
    assert addressed_text(msg("cosa fa il Comune?"), 77, "SibylBot") is None
    mention = [{"type": "mention", "offset": 0, "length": 9}]
    assert addressed_text(msg("@SibylBot cosa fa il Comune?", entities=mention), 77, "SibylBot") == "cosa fa il Comune?"
    other = [{"type": "mention", "offset": 0, "length": 9}]
    assert addressed_text(msg("@OtherBot cosa fa il Comune?", entities=other), 77, "SibylBot") is None
    assert addressed_text(msg("e per il 2026?", reply_from=bot), 77, "SibylBot") == "e per il 2026?"
    human = {"id": 10, "is_bot": False, "first_name": "B"}
    assert addressed_text(msg("e per il 2026?", reply_from=human), 77, "SibylBot") is None


_line = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=60).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(lead=_line, bullets=st.lists(st.tuples(_line, st.sampled_from(["it", "en"])), min_size=1, max_size=4),
       language=st.sampled_from(["it", "en"]), titles=st.lists(_line, min_size=1, max_size=3))
def test_structured_answer_renders_what_the_answer_text_shows(lead, bullets, language, titles):
    """The HTML drawn from the structured answer shows exactly the answer text (the API's `answer`),
    escaped: Telegram and the web show the same words."""
    from retrieval.answer import Answer, Bullet, Source
    from retrieval.answer import render as answer_text

    sources = [Source(n, f"d:{n}", "dup", title, "Area 1", "passage", 1.0) for n, title in enumerate(titles, 1)]
    cited = [Bullet(text, 1 + i % len(sources), lang) for i, (text, lang) in enumerate(bullets)]
    payload = Answer("q", language, True, answer_text(lead, cited, sources, language), sources,
                     lead=lead, bullets=cited).to_dict()
    out = render.answer_html(payload)
    assert parse_telegram_html(out) == parse_telegram_html(render.answer_html({**payload, "structured": None}))
    assert parse_telegram_html(out).strip() == payload["answer"].strip()
    assert out.count("<b>[") == len(cited) + len(sources)
