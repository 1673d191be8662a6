"""The part of Discord's markdown the bot writes, as HTML: bold, italics, code, quotes, small text, links,
mentions, timestamps and backslash escapes. Everything is escaped first, so a message can never inject markup."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime

_INLINE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"__(.+?)__"), r"<u>\1</u>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"<em>\1</em>"),
    (re.compile(r"~~(.+?)~~"), r"<s>\1</s>"),
    (re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)"), r'<a href="\2" target="_blank" rel="noopener">\1</a>'),
]
_CODE = re.compile(r"`([^`]+)`")
_BLOCK = re.compile(r"```(?:\w*\n)?(.*?)```", re.S)
_MENTION = re.compile(r"&lt;@!?(\d+)&gt;")
_TIME = re.compile(r"&lt;t:(\d+)(?::([tTdDfFR]))?&gt;")
_JUMP = re.compile(r"https://discord\.com/channels/[\d@me]+/\d+/(\d+)")  # a link to a message: here, on the page
_EMOJI = re.compile(r"&lt;a?:(\w+):\d+&gt;")
# A backslash before a markdown character shows that character (`astro1\_full.jpg`), as in Discord.
_ESCAPED = re.compile(r"\\(&gt;|&lt;|[\\*_~`|#:\[\]()-])")  # < and > are escaped to HTML already


def to_html(text: str, name_of: Callable[[int], str | None]) -> str:
    """`name_of(user id)` names mentioned members (None: unknown)."""
    parts = _BLOCK.split(html.escape(text.replace("\0", ""), quote=False))  # NUL marks `code` set aside
    out = []
    for index, part in enumerate(parts):
        if index % 2:  # inside ``` ```: as typed
            out.append(f"<pre>{part}</pre>")
        else:
            out.append(_lines(part, name_of))
    return "".join(out)


def _lines(text: str, name_of: Callable[[int], str | None]) -> str:
    rendered = []
    for line in text.split("\n"):
        css = ""
        if line.startswith("-# "):
            line, css = line[3:], "small"
        elif line.startswith("&gt; "):
            line, css = line[5:], "quote"
        elif re.match(r"#{1,3} ", line):
            line, css = line.lstrip("#").lstrip(), "heading"
        line = _inline(line, name_of)
        rendered.append(f'<span class="{css}">{line}</span>' if css else line)
    return "<br>".join(rendered)


def _inline(line: str, name_of: Callable[[int], str | None]) -> str:
    codes: list[str] = []  # `code` set aside, so that nothing inside it is formatted (while **x `y`** still is)

    def aside(match: re.Match[str]) -> str:
        codes.append(match[1])
        return f"\0{len(codes) - 1}\0"

    line = _CODE.sub(aside, line)
    # as an entity, so that no pattern below sees it
    line = _ESCAPED.sub(lambda m: m[1] if m[1].startswith("&") else f"&#{ord(m[1])};", line)
    line = _JUMP.sub(r'<a href="#m\1">the message ↑</a>', line)
    for pattern, replacement in _INLINE:
        line = pattern.sub(replacement, line)
    line = _MENTION.sub(lambda m: f'<span class="mention">@{name_of(int(m[1])) or "unknown"}</span>', line)
    line = _TIME.sub(lambda m: _when(int(m[1]), m[2] or "f"), line)
    line = _EMOJI.sub(r":\1:", line)
    return re.sub(r"\0(\d+)\0", lambda m: f"<code>{codes[int(m[1])]}</code>", line)


def _when(unix: int, style: str) -> str:
    moment = datetime.fromtimestamp(unix, UTC)
    if style == "R":
        seconds = int(moment.timestamp() - datetime.now(UTC).timestamp())
        minutes = abs(seconds) // 60
        amount = f"{minutes} min" if minutes else f"{abs(seconds)} s"
        text = f"in {amount}" if seconds > 0 else f"{amount} ago"
    else:
        text = moment.strftime("%H:%M UTC" if style in "tT" else "%d %b %Y %H:%M UTC")
    return f'<time datetime="{moment.isoformat()}">{text}</time>'
