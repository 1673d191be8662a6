"""Discord's limits that the OpenAPI schema does not state, or states only for some routes.

The schema already bounds e.g. `content` to 2,000 characters on most message routes; checking
here as well keeps every route that creates or edits a message equally strict (the interaction
callback's schema is a union whose message branch a body can slip past by its `type`), and
adds the limits the schema cannot express: lowercase command names, total embed size, the number
of files in a multipart body, the per-file upload limit, empty messages.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from .errors import EMPTY_MESSAGE, ENTITY_TOO_LARGE, DiscordError, form_error
from .model import UploadedFile

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_FILES = 10
MAX_EMBED_TOTAL = 6000
MAX_NAME = 32
MAX_DESCRIPTION = 100
MAX_OPTIONS = 25
MAX_COMMAND_TOTAL = 4000

CHAT_INPUT = 1
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2


def check_message(
    body: dict[str, Any],
    files: Sequence[UploadedFile],
    upload_limit: int,
    *,
    at: Sequence[str] = (),
    creating: bool = True,
) -> None:
    """A message about to be created (or, with creating=False, edited). `at`: where it sits in the body."""
    content = body.get("content")
    if isinstance(content, str) and len(content) > MAX_CONTENT:
        raise form_error([*at, "content"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    embeds = body.get("embeds") or []
    if len(embeds) > MAX_EMBEDS:
        raise form_error([*at, "embeds"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    total = sum(_embed_text(embed) for embed in embeds if isinstance(embed, dict))
    if total > MAX_EMBED_TOTAL:
        raise form_error([*at, "embeds"], "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")
    check_files(files, upload_limit, at=at)
    if creating and not (
        content or embeds or files or body.get("components") or body.get("poll") or body.get("sticker_ids")
    ):
        raise DiscordError(400, EMPTY_MESSAGE, "Cannot send an empty message")


def check_files(files: Sequence[UploadedFile], upload_limit: int, *, at: Sequence[str] = ()) -> None:
    if len(files) > MAX_FILES:
        raise form_error([*at, "attachments"], "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_FILES} or fewer in length.")
    for file in files:
        if len(file.data) > upload_limit:
            raise DiscordError(413, ENTITY_TOO_LARGE, "Request entity too large")


def _embed_text(embed: dict[str, Any]) -> int:
    parts = [embed.get("title"), embed.get("description")]
    parts += [(embed.get("footer") or {}).get("text"), (embed.get("author") or {}).get("name")]
    for item in embed.get("fields") or []:
        parts += [item.get("name"), item.get("value")]
    return sum(len(p) for p in parts if isinstance(p, str))


def check_commands(commands: list[dict[str, Any]]) -> None:
    """A bulk overwrite of application commands, with the rules Discord applies on top of the schema."""
    seen: set[tuple[int, str]] = set()
    for index, command in enumerate(commands):
        kind = command.get("type") or CHAT_INPUT
        name = command.get("name", "")
        if (kind, name) in seen:
            raise form_error(
                [index, "name"],
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                f"Application command names must be unique: {name}",
            )
        seen.add((kind, name))
        if kind == CHAT_INPUT:
            _check_named(command, [index])
            if _command_size(command) > MAX_COMMAND_TOTAL:
                raise form_error([index], "APPLICATION_COMMAND_TOO_LARGE", "Command exceeds maximum size (4000)")
            _check_options(command.get("options") or [], [index, "options"])
        elif command.get("description"):
            raise form_error(
                [index, "description"],
                "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                "Context menu commands cannot have description",
            )


def _check_named(item: dict[str, Any], path: list) -> None:
    name = item.get("name", "")
    if not _valid_name(name):
        raise form_error([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", f"Command name is invalid: {name!r}")
    description = item.get("description") or ""
    if not 1 <= len(description) <= MAX_DESCRIPTION:
        raise form_error(
            [*path, "description"], "BASE_TYPE_BAD_LENGTH", f"Must be between 1 and {MAX_DESCRIPTION} in length."
        )


def _valid_name(name: str) -> bool:
    """^[-_\\p{L}\\p{N}]{1,32}$, and lowercase wherever a letter has a lowercase form."""
    if not 1 <= len(name) <= MAX_NAME or name != name.lower():
        return False
    return all(ch in "-_" or unicodedata.category(ch)[0] in "LN" for ch in name)


def _check_options(options: list[dict[str, Any]], path: list) -> None:
    if len(options) > MAX_OPTIONS:
        raise form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length.")
    names: set[str] = set()
    optional_seen = False
    for index, option in enumerate(options):
        here = [*path, index]
        _check_named(option, here)
        if option["name"] in names:
            raise form_error(
                [*here, "name"], "APPLICATION_COMMAND_OPTION_NAME_ALREADY_EXISTS", "Option names must be unique"
            )
        names.add(option["name"])
        if option.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
            _check_options(option.get("options") or [], [*here, "options"])
            continue
        if option.get("required"):
            if optional_seen:
                raise form_error(
                    [*here, "required"],
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
        else:
            optional_seen = True
        for choice_index, choice in enumerate(option.get("choices") or []):
            if not 1 <= len(choice.get("name", "")) <= 100:
                raise form_error(
                    [*here, "choices", choice_index, "name"],
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )


def _command_size(command: dict[str, Any]) -> int:
    """Discord's 4,000-character budget: names, descriptions and choice names and values, recursively."""

    def size(item: dict[str, Any]) -> int:
        total = len(item.get("name", "")) + len(item.get("description") or "")
        for choice in item.get("choices") or []:
            total += len(choice.get("name", "")) + len(str(choice.get("value", "")))
        return total + sum(size(option) for option in item.get("options") or [])

    return size(command)
