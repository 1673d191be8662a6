"""Captions a member writes (issue #27): one line of visible text, kept as written, shown without markdown or pings."""

from __future__ import annotations

import os
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.captions import CAPTION_MAX, check_caption, shown
from bot.intake import Rejected

PROPERTY = settings(
    max_examples=int(os.environ.get("INTAKE_EXAMPLES", "300")), derandomize=True, deadline=None, database=None
)
REFUSALS = [
    re.compile(r"the caption holds an invisible character \(U\+[0-9A-F]{4,6}, [^)]+\); please write it again "
               r"without it"),
    re.compile(rf"the caption is \d+ characters long; the limit is {CAPTION_MAX}"),
]
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# What members type, and what breaks text: markdown, mentions, line breaks, controls, direction overrides,
# emoji joined by ZWJ, combining marks, half surrogates, private use.
PIECES = st.sampled_from(
    ["me", " ", "  ", "\n", "\r\n", "\t", "\u00a0", "`", "```", "**", "*", "_", "__", "~~", "||", "\\", ">", "# ",
     "[x](https://evil.example)", "<@123456789012345678>", "<@&123456789012345678>", "@everyone", "@here",
     "\x00", "\x07", "\x1b[31m", "\x7f", "\x85", *BIDI, "\u200b", "\ufeff", "👩\u200d💻", "e\u0301", "\ud800",
     "\ue000", "日本", "مرحبا", "x" * 150]
)
CAPTIONS = st.one_of(st.text(max_size=400), st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=12).map("".join))


@PROPERTY
@given(CAPTIONS)
def test_a_caption_is_kept_as_one_line_of_visible_text_or_refused_in_words(text):
    try:
        caption = check_caption(text)
    except Rejected as refusal:
        assert any(r.fullmatch(refusal.reason) for r in REFUSALS), refusal.reason
        return
    assert len(caption) <= CAPTION_MAX
    assert caption == caption.strip() and "  " not in caption
    assert not any(c.isspace() and c != " " for c in caption)  # one line: no line break, tab or odd space
    for c in caption:
        assert unicodedata.category(c) not in ("Cc", "Co", "Cs"), repr(c)
        assert unicodedata.category(c) != "Cf" or c in "\u200c\u200d", repr(c)
    caption.encode("utf-8")  # what the database and a training's caption files need
    assert "".join(caption.split()) == "".join(text.split())  # nothing but white space changed
    assert check_caption(caption) == caption


@PROPERTY
@given(CAPTIONS, st.sampled_from(BIDI), st.integers(0, 400))
def test_a_text_direction_override_anywhere_is_refused(text, control, at):
    with pytest.raises(Rejected, match="^the caption holds an invisible character"):
        check_caption(text[:at] + control + text[at:])


@PROPERTY
@given(CAPTIONS)
def test_a_shown_caption_neither_pings_nor_formats_the_message_around_it(text):
    try:
        caption = check_caption(text)
    except Rejected:
        return
    message = f"Photo 3 now reads: {shown(caption)}"
    assert not re.search(r"@(everyone|here)|<@[!&]?\d", message)
    bare = re.sub(r"\\.", "", message, flags=re.DOTALL)  # what markdown sees unescaped
    for char in "*_~|`<":  # bold, italics, underline, strikethrough, spoiler, code, a mention or a tag
        assert char not in bare, (char, message)
    assert "](" not in bare, message  # a masked link
    assert re.sub(r"\\(.)", r"\1", shown(caption)).replace("\u200b", "") == caption  # shown as written


def test_the_limit_counts_what_is_kept():
    assert check_caption("  me   at\nhome \t") == "me at home"
    assert check_caption("x" * CAPTION_MAX + "\n\n") == "x" * CAPTION_MAX
    with pytest.raises(Rejected, match=rf"^the caption is 301 characters long; the limit is {CAPTION_MAX}$"):
        check_caption("x" * 301)


def test_an_override_is_named_for_the_member():
    with pytest.raises(Rejected) as refused:
        check_caption("me at home\u202eemoh")
    assert refused.value.reason == (
        "the caption holds an invisible character (U+202E, right-to-left override); please write it again without it"
    )
