"""INTERACTION_CREATE payloads as a Discord client would produce them.

A slash command is resolved against the commands the bot REGISTERED (its tree.sync()), not
against the bot's Python code: a test that uses a name, an option or a value type the registered
command does not have cannot be sent by a real client, so it raises `InvalidInteraction` in the
test at once instead of producing a Discord error. The same goes for clicking a button that is
not on the message or is disabled, and for submitting a modal that was never opened.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from .model import (
    ADMINISTRATOR,
    DM,
    EVERYONE_PERMISSIONS,
    Attachment,
    Channel,
    Interaction,
    Member,
    Message,
    Role,
    User,
    World,
)

APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT = 2, 3, 5
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 3, 4, 5, 6, 7, 8, 9, 10, 11
OPTION_TYPE_NAMES = {
    3: "string",
    4: "integer",
    5: "boolean",
    6: "user",
    7: "channel",
    8: "role",
    9: "mentionable",
    10: "number",
    11: "attachment",
}
BUTTON, STRING_SELECT, TEXT_INPUT, USER_SELECT, ROLE_SELECT, MENTIONABLE_SELECT, CHANNEL_SELECT = 2, 3, 4, 5, 6, 7, 8
ACTION_ROW, LABEL = 1, 18
GUILD_CONTEXT, BOT_DM_CONTEXT = 0, 1

FileSpec = tuple[str, bytes, str | None]  # (filename, data, declared content type)


class InvalidInteraction(ValueError):
    """The test asked for an interaction no Discord client could send (a bug in the test)."""


class CommandNotAvailable(InvalidInteraction):
    """The command exists but this member could not use it here (permissions, or DM vs guild)."""


def _new(world: World, kind: int, actor: Member | User, channel: Channel, locale: str) -> Interaction:
    user = actor.user if isinstance(actor, Member) else actor
    guild = channel.guild
    member: Member | None = None
    if guild is not None:
        member = guild.members.get(user.id)
        if member is None:
            raise InvalidInteraction(f"{user.name} is not a member of {guild.name}")
        if channel not in guild.channels:
            raise InvalidInteraction(f"#{channel.name} is not a channel of {guild.name}")
    elif channel.type == DM and channel.recipient is not user:
        raise InvalidInteraction(
            f"{user.name} cannot use the DM channel of {channel.recipient.name if channel.recipient else '?'}"
        )

    interaction = Interaction(world.ids.next(), secrets.token_urlsafe(48), kind, world, user, channel, member)
    payload: dict[str, Any] = {
        "id": str(interaction.id),
        "application_id": str(world.application_id),
        "type": kind,
        "token": interaction.token,
        "version": 1,
        "channel_id": str(channel.id),
        "locale": locale,
        "entitlements": [],
        "attachment_size_limit": guild.upload_limit if guild is not None else 10 * 1024 * 1024,
    }
    if guild is not None and member is not None:
        bot_member = guild.members[world.bot.id]
        payload.update(
            guild_id=str(guild.id),
            guild={"id": str(guild.id), "locale": guild.locale, "features": []},
            guild_locale=guild.locale,
            channel={**channel.payload(), "permissions": str(member.permissions())},
            member=member.payload(with_permissions=True),
            app_permissions=str(bot_member.permissions()),
            authorizing_integration_owners={"0": str(guild.id)},
            context=GUILD_CONTEXT,
        )
    else:
        payload.update(
            channel=channel.payload(),
            user=user.payload(),
            app_permissions=str(EVERYONE_PERMISSIONS),
            authorizing_integration_owners={"0": str(user.id)},
            context=BOT_DM_CONTEXT,
        )
    interaction.payload = payload
    return interaction


# --- slash commands ------------------------------------------------------------------------------


def build_slash(
    world: World,
    actor: Member | User,
    channel: Channel,
    full_name: str,
    options: Mapping[str, Any] | None,
    attachments: Mapping[str, FileSpec | Attachment] | None,
    locale: str = "en-US",
    override_permissions: bool = False,
) -> Interaction:
    interaction = _new(world, APPLICATION_COMMAND, actor, channel, locale)
    interaction.name = full_name
    command, path = _find_command(world, channel, full_name)
    _check_available(command, interaction, override_permissions)

    values: dict[str, Any] = dict(options or {})
    for name, file in (attachments or {}).items():
        if name in values:
            raise InvalidInteraction(f"option {name!r} given both in options and in attachments")
        values[name] = file
    leaf = path[-1] if path else command
    defined = leaf.get("options") or []
    resolved: dict[str, dict[str, Any]] = {}
    sent = [
        _option_value(world, interaction, full_name, spec, values, resolved)
        for spec in defined
        if spec["name"] in values
    ]
    unknown = sorted(set(values) - {spec["name"] for spec in defined})
    if unknown:
        known = [spec["name"] for spec in defined]
        raise InvalidInteraction(f"/{full_name} has no option {unknown[0]!r}; its options are {known}")
    missing = [spec["name"] for spec in defined if spec.get("required") and spec["name"] not in values]
    if missing:
        raise InvalidInteraction(f"/{full_name} requires option {missing[0]!r}")

    for step in reversed(path):
        sent = [{"name": step["name"], "type": step["type"], "options": sent}]
    data: dict[str, Any] = {"id": command["id"], "name": command["name"], "type": 1}
    if sent:
        data["options"] = sent
    if resolved:
        data["resolved"] = resolved
    if command.get("guild_id"):
        data["guild_id"] = command["guild_id"]
    interaction.payload["data"] = data
    interaction.name = full_name
    return interaction


def _find_command(world: World, channel: Channel, full_name: str) -> tuple[dict, list[dict]]:
    parts = full_name.split()
    if not parts:
        raise InvalidInteraction("empty command name")
    scopes = ([world.commands.get(channel.guild.id, [])] if channel.guild is not None else []) + [
        world.commands.get(None, [])
    ]
    candidates = [c for scope in scopes for c in scope if (c.get("type") or 1) == 1]
    command = next((c for c in candidates if c["name"] == parts[0]), None)
    if command is None:
        names = sorted({c["name"] for c in candidates})
        where = f"guild {channel.guild.name!r} or globally" if channel.guild is not None else "globally (DM)"
        raise InvalidInteraction(f"no command /{parts[0]} registered {where}; registered: {names} (did the bot sync?)")
    node, path = command, []
    for part in parts[1:]:
        subs = [o for o in node.get("options") or [] if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
        step = next((o for o in subs if o["name"] == part), None)
        if step is None:
            raise InvalidInteraction(
                f"/{' '.join(parts[: parts.index(part)])} has no subcommand {part!r}; "
                f"it has {[o['name'] for o in subs]}"
            )
        path.append(step)
        node = step
    if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in node.get("options") or []):
        subs = [o["name"] for o in node["options"]]
        raise InvalidInteraction(f"/{full_name} is a group: name one of its subcommands {subs}")
    return command, path


def _check_available(command: dict, interaction: Interaction, override_permissions: bool) -> None:
    """Discord shows a command only where its contexts allow, and only to members holding its
    default_member_permissions, unless a server admin overrode that for the command (Server
    Settings > Integrations), which `override_permissions` stands for."""
    contexts = command.get("contexts")
    in_dm = interaction.member is None
    if in_dm:
        allowed = (
            (BOT_DM_CONTEXT in contexts) if contexts is not None else command.get("dm_permission", True) is not False
        )
        if not allowed or command.get("guild_id"):
            raise CommandNotAvailable(f"/{command['name']} cannot be used in DMs")
        return
    if contexts is not None and GUILD_CONTEXT not in contexts:
        raise CommandNotAvailable(f"/{command['name']} cannot be used in a server")
    required = command.get("default_member_permissions")
    if required is not None and interaction.member is not None and not override_permissions:
        needed = int(required)
        have = interaction.member.permissions()
        if not have & ADMINISTRATOR and (have & needed) != needed:
            raise CommandNotAvailable(
                f"{interaction.user.name} lacks the permissions /{command['name']} requires ({needed}), so Discord"
                " would not offer the command; pass override_permissions=True to act as a server admin's override"
            )


def _option_value(
    world: World, interaction: Interaction, full_name: str, spec: dict, values: Mapping[str, Any], resolved: dict
) -> dict[str, Any]:
    name, kind, value = spec["name"], spec["type"], values[spec["name"]]
    where = f"/{full_name} option {name!r} ({OPTION_TYPE_NAMES.get(kind, kind)})"
    guild = interaction.channel.guild

    def bad(why: str) -> InvalidInteraction:
        return InvalidInteraction(f"{where}: {why}, got {value!r}")

    def resolve_user(target: Member | User) -> str:
        user = target.user if isinstance(target, Member) else target
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        member = guild.members.get(user.id) if guild is not None else None
        if member is not None:
            resolved.setdefault("members", {})[str(user.id)] = member.payload(with_user=False, with_permissions=True)
        return str(user.id)

    def resolve_role(role: Role) -> str:
        resolved.setdefault("roles", {})[str(role.id)] = role.payload()
        return str(role.id)

    if kind == STRING:
        if not isinstance(value, str):
            raise bad("expected str")
        if not spec.get("min_length", 0) <= len(value) <= spec.get("max_length", 6000):
            raise bad("length out of the registered bounds")
        sent: Any = value
    elif kind == INTEGER:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("expected int")
        sent = value
    elif kind == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("expected int or float")
        sent = value
    elif kind == BOOLEAN:
        if not isinstance(value, bool):
            raise bad("expected bool")
        sent = value
    elif kind == USER:
        if not isinstance(value, (Member, User)):
            raise bad("expected a Member or User of the stand-in")
        sent = resolve_user(value)
    elif kind == ROLE:
        if not isinstance(value, Role):
            raise bad("expected a Role of the stand-in")
        sent = resolve_role(value)
    elif kind == MENTIONABLE:
        if isinstance(value, Role):
            sent = resolve_role(value)
        elif isinstance(value, (Member, User)):
            sent = resolve_user(value)
        else:
            raise bad("expected a Member, User or Role of the stand-in")
    elif kind == CHANNEL:
        if not isinstance(value, Channel):
            raise bad("expected a Channel of the stand-in")
        if spec.get("channel_types") and value.type not in spec["channel_types"]:
            raise bad(f"channel type not in {spec['channel_types']}")
        permissions = interaction.member.permissions() if interaction.member is not None else EVERYONE_PERMISSIONS
        resolved.setdefault("channels", {})[str(value.id)] = {
            "id": str(value.id),
            "name": value.name,
            "type": value.type,
            "permissions": str(permissions),
            "parent_id": None,
            "flags": 0,
        }
        sent = str(value.id)
    elif kind == ATTACHMENT:
        if isinstance(value, Attachment):
            attachment = value
        elif isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], (bytes, bytearray)):
            filename, data, content_type = value
            attachment = world.host_attachment(
                interaction.channel.id, filename, bytes(data), content_type, ephemeral=True
            )
        else:
            raise bad("expected (filename, bytes, content_type) or a hosted Attachment")
        resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
        sent = str(attachment.id)
    else:
        raise bad(f"option type {kind} is not supported by fake-discord")

    if kind in (INTEGER, NUMBER):
        if "min_value" in spec and spec["min_value"] is not None and value < spec["min_value"]:
            raise bad(f"below min_value {spec['min_value']}")
        if "max_value" in spec and spec["max_value"] is not None and value > spec["max_value"]:
            raise bad(f"above max_value {spec['max_value']}")
    choices = spec.get("choices")
    if choices and kind in (STRING, INTEGER, NUMBER) and value not in [c["value"] for c in choices]:
        raise bad(f"not one of the registered choices {[c['value'] for c in choices]}")
    return {"name": name, "type": kind, "value": sent}


# --- components ----------------------------------------------------------------------------------


def build_click(
    world: World,
    actor: Member | User,
    message: Message,
    custom_id: str,
    values: list[Any] | None,
    locale: str = "en-US",
) -> Interaction:
    if message.deleted:
        raise InvalidInteraction(f"message {message.id} was deleted")
    if message.author is not world.bot:
        raise InvalidInteraction("the message is not the bot's: its components would go to another application")
    interaction = _new(world, MESSAGE_COMPONENT, actor, message.channel, locale)
    component = message.find_component(custom_id)
    if component is None:
        ids = [c.get("custom_id") for c in message.iter_components() if c.get("custom_id")]
        raise InvalidInteraction(f"no component {custom_id!r} on the message; it has {ids}")
    if component.get("disabled"):
        raise InvalidInteraction(f"component {custom_id!r} is disabled")
    kind = component["type"]
    data: dict[str, Any] = {"custom_id": custom_id, "component_type": kind}
    if component.get("id") is not None:
        data["id"] = component["id"]
    if kind == BUTTON:
        if values is not None:
            raise InvalidInteraction("a button takes no values")
    elif kind in (STRING_SELECT, USER_SELECT, ROLE_SELECT, MENTIONABLE_SELECT, CHANNEL_SELECT):
        chosen = list(values or [])
        low, high = component.get("min_values", 1), component.get("max_values", 1)
        if not low <= len(chosen) <= high:
            raise InvalidInteraction(f"select {custom_id!r} takes {low} to {high} values, got {len(chosen)}")
        if kind == STRING_SELECT:
            offered = [o["value"] for o in component.get("options") or []]
            if any(v not in offered for v in chosen):
                raise InvalidInteraction(f"select {custom_id!r} offers {offered}, got {chosen}")
            data["values"] = chosen
        else:
            data["values"], data["resolved"] = _resolve_entities(message.channel, chosen)
    else:
        raise InvalidInteraction(f"component {custom_id!r} of type {kind} cannot be clicked")
    interaction.payload["data"] = data
    interaction.payload["message"] = message.payload(world)
    interaction.message = message
    interaction.name = custom_id
    return interaction


def _resolve_entities(channel: Channel, chosen: list[Any]) -> tuple[list[str], dict]:
    resolved: dict[str, dict] = {}
    ids = []
    for item in chosen:
        if isinstance(item, (Member, User)):
            user = item.user if isinstance(item, Member) else item
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            member = channel.guild.members.get(user.id) if channel.guild is not None else None
            if member is not None:
                resolved.setdefault("members", {})[str(user.id)] = member.payload(
                    with_user=False, with_permissions=True
                )
            ids.append(str(user.id))
        elif isinstance(item, Role):
            resolved.setdefault("roles", {})[str(item.id)] = item.payload()
            ids.append(str(item.id))
        elif isinstance(item, Channel):
            resolved.setdefault("channels", {})[str(item.id)] = {
                "id": str(item.id),
                "name": item.name,
                "type": item.type,
                "permissions": str(EVERYONE_PERMISSIONS),
                "flags": 0,
            }
            ids.append(str(item.id))
        else:
            raise InvalidInteraction(f"select values must be stand-in Members, Users, Roles or Channels, got {item!r}")
    return ids, resolved


# --- modals --------------------------------------------------------------------------------------


def build_modal_submit(
    world: World, actor: Member | User, opened_by: Interaction, values: Mapping[str, Any], locale: str = "en-US"
) -> Interaction:
    modal = opened_by.modal
    if modal is None:
        raise InvalidInteraction(
            f"interaction {opened_by.name!r} did not open a modal (callback type {opened_by.callback_type})"
        )
    interaction = _new(world, MODAL_SUBMIT, actor, opened_by.channel, locale)
    remaining = dict(values)

    def answer(field: dict) -> dict:
        custom_id = field["custom_id"]  # every modal component has one
        out: dict[str, Any] = {"type": field["type"], "custom_id": custom_id}
        if field.get("id") is not None:
            out["id"] = field["id"]
        if field["type"] == TEXT_INPUT:
            value = remaining.pop(custom_id, "")
            if not isinstance(value, str):
                raise InvalidInteraction(f"text input {custom_id!r} takes a str, got {value!r}")
            if field.get("required", True) and not value:
                raise InvalidInteraction(f"text input {custom_id!r} is required")
            if value and not field.get("min_length", 0) <= len(value) <= field.get("max_length", 4000):
                raise InvalidInteraction(f"text input {custom_id!r}: length out of the modal's bounds")
            out["value"] = value
        else:
            out["values"] = [str(v) for v in remaining.pop(custom_id, [])]
        return out

    components = []
    for top in modal.get("components") or []:
        if top["type"] == ACTION_ROW:
            components.append({"type": ACTION_ROW, "components": [answer(c) for c in top.get("components") or []]})
        elif top["type"] == LABEL:
            entry: dict[str, Any] = {"type": LABEL, "component": answer(top["component"])}
            if top.get("id") is not None:
                entry["id"] = top["id"]
            components.append(entry)
        # text displays and other read-only parts carry nothing back
    if remaining:
        raise InvalidInteraction(f"the modal has no field {min(remaining)!r}")
    interaction.payload["data"] = {"custom_id": modal.get("custom_id"), "components": components}
    if opened_by.message is not None:
        interaction.payload["message"] = opened_by.message.payload(world)
        interaction.message = opened_by.message
    interaction.name = modal.get("custom_id") or "modal"
    return interaction
