"""What a visitor types in the playground's chat box becomes the slash command Discord's client would send,
or a message in their words that says what is wrong; and the chat's markup cannot be injected."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from playground.markdown import to_html
from playground.typed import Unclear, flatten, parse

PHOTO = ("me.jpg", b"jpeg", "image/jpeg")
REGISTERED = [
    {"name": "imagine", "description": "Draw", "options": [
        {"name": "prompt", "type": 3, "required": True},
        {"name": "seed", "type": 4, "min_value": 0},
        {"name": "strength", "type": 10, "min_value": 0, "max_value": 1.5},
    ]},
    {"name": "train", "description": "Train", "options": [
        {"name": "steps", "type": 4, "min_value": 10, "max_value": 3000}, {"name": "fresh", "type": 5},
    ]},
    {"name": "share", "description": "Share", "options": [{"name": "member", "type": 6, "required": True}]},
    {"name": "dataset", "description": "Photos", "options": [
        {"name": "add", "type": 1, "description": "Add", "options": [
            {"name": "photo", "type": 11, "required": True}, {"name": "photo2", "type": 11},
            {"name": "caption", "type": 3},
        ]},
        {"name": "list", "type": 1, "description": "List"},
    ]},
]
COMMANDS = flatten(REGISTERED)
MEMBERS = {"ann": SimpleNamespace(id=11), "bob": SimpleNamespace(id=22)}


def test_a_mentionable_option_takes_a_member_or_everyone():
    """As /share's `who`: /help offers `/share @everyone`."""
    everyone = SimpleNamespace(id=1, name="@everyone")
    who = {"name": "who", "type": 9, "required": True}  # a mentionable
    lend = flatten([{"name": "lend", "description": "Share", "options": [who]}])
    assert parse("/lend who: @everyone", [], lend, MEMBERS, everyone).options == {"who": everyone}
    assert parse("/lend @ann", [], lend, MEMBERS, everyone).options == {"who": MEMBERS["ann"]}
    with pytest.raises(Unclear, match=r"names a member \(@ann, @bob\) or @everyone, not '@cat'"):
        parse("/lend @cat", [], lend, MEMBERS, everyone)
    with pytest.raises(Unclear, match="names a member"):  # a user option never takes a role
        parse("/share member: @everyone", [], COMMANDS, MEMBERS, everyone)


def test_options_by_name_the_first_one_unnamed_and_subcommands_spelled_out():
    asked = parse("/imagine as a knight with @bob seed: 7 strength: 0.5", [], COMMANDS, MEMBERS)
    assert (asked.name, asked.options) == ("imagine", {"prompt": "as a knight with <@22>", "seed": 7, "strength": 0.5})
    assert parse("/train", [], COMMANDS, MEMBERS).options == {}
    assert parse("/train fresh: yes", [], COMMANDS, MEMBERS).options == {"fresh": True}
    assert parse("/share member: @bob", [], COMMANDS, MEMBERS).options == {"member": MEMBERS["bob"]}
    added = parse("/dataset add caption: me: at home", [PHOTO, PHOTO], COMMANDS, MEMBERS)
    assert added.name == "dataset add" and added.options == {"caption": "me: at home"}
    assert added.attachments == {"photo": PHOTO, "photo2": PHOTO}  # the chosen photos fill its file options
    assert [c.name for c in COMMANDS] == ["dataset add", "dataset list", "imagine", "share", "train"]


@pytest.mark.parametrize(("typed", "files", "said"), [
    ("/paint a cat", [], "no command /paint"),
    ("/imagine seed: 7", [], "/imagine needs prompt:"),
    ("/imagine a cat seed: seven", [], "seed: takes a whole number, not 'seven'"),
    ("/train steps: 4", [], "steps: is from 10 to 3000"),
    ("/train fresh: maybe", [], "fresh: is True or False"),
    ("/share member: carl", [], "member: names a member (@ann, @bob)"),
    ("/dataset add", [], "/dataset add needs photo:"),
    ("/dataset add", [PHOTO] * 3, "at most 2 photos at a time; you chose 3"),
    ("/train", [PHOTO], "/train takes no photos"),
    ("/dataset list everything", [], "/dataset list takes no options"),
])
def test_what_cannot_be_sent_is_said_in_the_visitors_words(typed, files, said):
    with pytest.raises(Unclear, match=re.escape(said)):
        parse(typed, files, COMMANDS, MEMBERS)


def test_markdown_is_rendered_and_markup_escaped():
    text = "**Ready** for `/train`, <@11>!\n-# small <script>alert(1)</script>\n**For `AB12`**\0"
    shown = to_html(text, lambda uid: "ann")
    assert "<strong>Ready</strong>" in shown and "<code>/train</code>" in shown
    assert "<strong>For <code>AB12</code></strong>" in shown
    assert '<span class="mention">@ann</span>' in shown and '<span class="small">' in shown
    assert "<script>" not in shown and "&lt;script&gt;" in shown


def test_backslash_escapes_show_the_character_as_discord_does():
    shown = to_html(r"saved astro1\_full\_2.jpg, \*not bold\*, \> no quote, a \\ backslash, `c\_d`", lambda uid: None)
    assert "astro1&#95;full&#95;2.jpg" in shown and "<em>" not in shown  # shown as astro1_full_2.jpg
    assert "&#42;not bold&#42;" in shown and "&gt; no quote" in shown and "a &#92; backslash" in shown
    assert "<code>c\\_d</code>" in shown  # inside code a backslash is as typed
