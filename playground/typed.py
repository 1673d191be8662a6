"""What a visitor typed in the chat box, turned into a slash command of the bot's registered ones.

The syntax is the one Discord's box shows: `/imagine prompt: as a knight seed: 7`, `/dataset add caption: me`.
Text before the first `name:` goes to the command's first option (`/imagine as a knight`); the photos chosen
beside the box fill its attachment options in order; `@name` in text becomes a mention of that member.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fake_discord import Member, Role
from fake_discord.interactions import (
    ATTACHMENT,
    BOOLEAN,
    CHANNEL,
    INTEGER,
    MENTIONABLE,
    NUMBER,
    ROLE,
    STRING,
    SUB_COMMAND,
    SUB_COMMAND_GROUP,
    USER,
    FileSpec,
)

TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class Unclear(ValueError):
    """What was typed is not a command the bot offers here; the message says why, in the visitor's words."""


@dataclass
class Command:
    """A registered command as a visitor types it: its full name and the options of that (sub)command."""

    name: str  # "dataset add"
    description: str
    options: list[dict] = field(default_factory=list)

    def usage(self) -> str:
        parts = [f"/{self.name}"]
        for option in self.options:
            parts.append(f"{option['name']}:" if option.get("required") else f"[{option['name']}:]")
        return " ".join(parts)


@dataclass
class Invocation:
    name: str
    options: dict[str, Any]
    attachments: dict[str, FileSpec]


def flatten(registered: Sequence[Mapping[str, Any]]) -> list[Command]:
    """Every command a visitor can type, subcommands spelled out, in the order Discord lists them."""
    found: list[Command] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        name = f"{prefix} {node['name']}".strip()
        options = list(node.get("options") or [])
        subs = [o for o in options if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        if subs:
            for sub in subs:
                walk(sub, name)
        else:
            found.append(Command(name, node.get("description", ""), options))

    for command in registered:
        if (command.get("type") or 1) == 1:
            walk(command, "")
    return sorted(found, key=lambda c: c.name)


def parse(
    text: str, files: Sequence[FileSpec], commands: Sequence[Command], members: Mapping[str, Member],
    everyone: Role | None = None,
) -> Invocation:
    """`everyone`: the server's @everyone role, which a role or mentionable option takes as `@everyone`."""
    words = text.strip().removeprefix("/")
    command = max(
        (c for c in commands if words == c.name or words.startswith(c.name + " ")),
        key=lambda c: len(c.name),
        default=None,
    )
    if command is None:
        asked = words.split(" ", 1)[0] or "?"
        raise Unclear(f"doppel has no command /{asked}. Type / to see the list.")
    values = _split(words[len(command.name) :], command)
    options: dict[str, Any] = {}
    for spec in command.options:
        if spec["name"] in values and spec["type"] != ATTACHMENT:
            options[spec["name"]] = _value(spec, values[spec["name"]], members, everyone)
    attachments = _attach(command, files)
    missing = [s["name"] for s in command.options if s.get("required") and s["name"] not in {**options, **attachments}]
    if missing:
        raise Unclear(f"/{command.name} needs {missing[0]}: (usage: {command.usage()})")
    return Invocation(command.name, options, attachments)


def mentions(text: str, members: Mapping[str, Member]) -> str:
    """`@ann` written as Discord's client sends it: `<@id>`."""
    return re.sub(r"@(\w+)", lambda m: f"<@{members[m[1]].id}>" if m[1] in members else m[0], text)


def _split(rest: str, command: Command) -> dict[str, str]:
    """{option name: its text}; text before the first `name:` belongs to the first non-file option."""
    names = [o["name"] for o in command.options]
    if not names:
        if rest.strip():
            raise Unclear(f"/{command.name} takes no options.")
        return {}
    marker = re.compile(r"(?:^|\s)(" + "|".join(map(re.escape, names)) + r"):")
    found = list(marker.finditer(rest))
    values: dict[str, str] = {}
    lead = rest[: found[0].start() if found else len(rest)].strip()
    if lead:
        first = next((o["name"] for o in command.options if o["type"] != ATTACHMENT), None)
        if first is None:
            raise Unclear(f"/{command.name} takes only photos; choose them beside the box.")
        values[first] = lead
    ends = [m.start() for m in found[1:]] + [len(rest)]
    for this, end in zip(found, ends, strict=False):  # no markers: no values
        values[this[1]] = rest[this.end() : end].strip()
    return values


def _value(spec: Mapping[str, Any], text: str, members: Mapping[str, Member], everyone: Role | None) -> Any:
    name, kind = spec["name"], spec["type"]
    choices = spec.get("choices") or []
    if choices:
        said = text.lower()
        chosen = next((c["value"] for c in choices if said in (c["name"].lower(), str(c["value"]).lower())), None)
        if chosen is None:
            raise Unclear(f"{name}: is one of {', '.join(c['name'] for c in choices)}.")
        return chosen
    if kind == STRING:
        return mentions(text, members)
    if kind in (INTEGER, NUMBER):
        return _number(spec, text)
    if kind == BOOLEAN:
        if text.lower() not in TRUE | FALSE:
            raise Unclear(f"{name}: is True or False, not {text!r}.")
        return text.lower() in TRUE
    if kind in (ROLE, MENTIONABLE) and everyone is not None and text == "@everyone":
        return everyone
    if kind in (USER, MENTIONABLE):
        member = members.get(text.removeprefix("@"))
        if member is None:
            also = " or @everyone" if kind == MENTIONABLE and everyone is not None else ""
            raise Unclear(f"{name}: names a member ({', '.join('@' + m for m in members)}){also}, not {text!r}.")
        return member
    if kind in (CHANNEL, ROLE):
        raise Unclear(f"{name}: is not something the playground can send yet.")
    return text


def _number(spec: Mapping[str, Any], text: str) -> int | float:
    name, whole = spec["name"], spec["type"] == INTEGER
    try:
        number = int(text) if whole else float(text)
    except ValueError:
        raise Unclear(f"{name}: takes a {'whole ' if whole else ''}number, not {text!r}.") from None
    low, high = spec.get("min_value"), spec.get("max_value")
    if (low is not None and number < low) or (high is not None and number > high):
        raise Unclear(f"{name}: is from {low if low is not None else '…'} to {high if high is not None else '…'}.")
    return number


def _attach(command: Command, files: Sequence[FileSpec]) -> dict[str, FileSpec]:
    slots = [o for o in command.options if o["type"] == ATTACHMENT]
    if len(files) > len(slots):
        if not slots:
            raise Unclear(f"/{command.name} takes no photos; clear the photos beside the box.")
        raise Unclear(f"/{command.name} takes at most {len(slots)} photos at a time; you chose {len(files)}.")
    return {slot["name"]: file for slot, file in zip(slots, files, strict=False)}
