"""What a member writes as a photo's caption: checked where it comes in, then kept as written.

A caption goes into the database, into a training's caption file (UTF-8) and back into the member's messages.
So it is one line of visible text: runs of white space (line breaks included) become one space, and a caption
holding a character that is not text is refused with the character named, rather than silently changed.
"""

from __future__ import annotations

import re
import unicodedata

import discord

from bot.intake import Rejected

CAPTION_MAX = 300

# Format characters that change how text is drawn rather than what it says: right-to-left overrides and
# isolates make a caption display in another order than it is stored (and than the trainer reads it).
# ZERO WIDTH (NON-)JOINER are kept: emoji sequences and Persian and Indic writing need them.
_KEPT_FORMAT = {"\u200c", "\u200d"}
_WHITE = re.compile(r"\s+")
_UNNAMED = {"Cc": "a control character", "Cs": "half of a surrogate pair", "Co": "a private-use character",
            "Cf": "a formatting character"}


def check_caption(text: str, limit: int = CAPTION_MAX) -> str:
    """The caption as kept: white space made single spaces and trimmed. Refused (`Rejected`, in the member's
    words) when it is longer than `limit` or holds a control or formatting character, a private-use character
    or half of a surrogate pair (which UTF-8 cannot store)."""
    caption = _WHITE.sub(" ", text).strip()
    for char in caption:
        category = unicodedata.category(char)
        if category in ("Cc", "Co", "Cs") or (category == "Cf" and char not in _KEPT_FORMAT):
            name = unicodedata.name(char, "").lower() or _UNNAMED[category]
            raise Rejected(
                f"the caption holds an invisible character (U+{ord(char):04X}, {name}); "
                "please write it again without it"
            )
    if len(caption) > limit:
        raise Rejected(f"the caption is {len(caption)} characters long; the limit is {limit}")
    return caption


# What Discord's markdown can start something with in the middle of a line, escaped wherever it is: each of
# these characters, and the "](" that makes a masked link. discord.utils.escape_markdown escapes a character only
# when it sees its pair, and misses some (found by tests/bot/test_captions.py: '[](0)' stays a masked link,
# '[0](__)' keeps its underline).
_MARKDOWN = re.compile(r"([\\*_~|`<]|\](?=\())")


def shown(text: str) -> str:
    """Text a member wrote (one line), safe to put in a message after other text: its markdown shown as typed,
    its mentions not pinging."""
    return _MARKDOWN.sub(r"\\\1", discord.utils.escape_mentions(text))
