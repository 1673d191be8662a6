"""Discord's REST API as a bot uses it: identity, command sync, interaction callbacks, webhooks
(follow-ups and the original response), channel messages, DMs, guilds and members.

Each route is declared with the path template of Discord's OpenAPI description (see openapi.py);
the server's middleware has already parsed and schema-checked the body when a handler runs
(`request[BODY]`, `request[FILES]`). Handlers add Discord's behaviour and its rules:
deadlines on the stand-in's clock, double acknowledgement, token expiry, authorship, limits.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from aiohttp import web

from . import rules
from .errors import (
    ALREADY_ACKNOWLEDGED,
    CANNOT_EDIT_OTHERS_MESSAGE,
    INVALID_WEBHOOK_TOKEN,
    UNKNOWN_CHANNEL,
    UNKNOWN_GUILD,
    UNKNOWN_INTERACTION,
    UNKNOWN_MEMBER,
    UNKNOWN_MESSAGE,
    UNKNOWN_USER,
    UNKNOWN_WEBHOOK,
    DiscordError,
    form_error,
)
from .gateway import Gateway
from .model import (
    CHAT_INPUT_COMMAND_MESSAGE,
    DEFAULT_MESSAGE,
    DEFAULT_UPLOAD_LIMIT,
    EPHEMERAL,
    LOADING,
    MANAGE_MESSAGES,
    REPLY_MESSAGE,
    Attachment,
    Channel,
    Interaction,
    Message,
    UploadedFile,
    World,
)
from .openapi import API_PREFIX
from .server import BODY, FILES, RECEIVED_AT, json_response

ACK_DEADLINE_S = 3.0
TOKEN_LIFETIME_S = 15 * 60

# Callback types.
PONG, CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 1, 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9
# Interaction types.
APPLICATION_COMMAND, MESSAGE_COMPONENT, MODAL_SUBMIT = 2, 3, 5

SETTABLE_FLAGS = (1 << 2) | (1 << 12) | (1 << 15)  # suppress embeds, suppress notifications, components v2


def no_content() -> web.Response:
    return web.Response(status=204)


class RestAPI:
    def __init__(self, world: World, gateway: Gateway, token: str) -> None:
        self.world = world
        self.gateway = gateway
        self.token = token

    def routes(self) -> list[web.RouteDef]:
        """(method, OpenAPI path template, handler). Literal segments (@original, @me) come before variables."""
        table = [
            ("GET", "/users/@me", self.get_me),
            ("POST", "/users/@me/channels", self.open_dm),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/{application_id}/commands", self.get_commands),
            ("PUT", "/applications/{application_id}/commands", self.put_commands),
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.get_commands),
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.put_commands),
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback", self.interaction_callback),
            ("POST", "/webhooks/{webhook_id}/{webhook_token}", self.create_followup),
            ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self.get_webhook_message),
            ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self.edit_webhook_message),
            ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/@original", self.delete_webhook_message),
            ("GET", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self.get_webhook_message),
            ("PATCH", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self.edit_webhook_message),
            ("DELETE", "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}", self.delete_webhook_message),
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("GET", "/channels/{channel_id}/messages", self.get_channel_messages),
            ("POST", "/channels/{channel_id}/messages", self.create_channel_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_channel_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_channel_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_channel_message),
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
        ]
        return [web.route(method, API_PREFIX + path, handler) for method, path, handler in table]

    # --- helpers ------------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordError(401, 0, "401: Unauthorized")

    def _channel(self, request: web.Request) -> Channel:
        channel = self.world.channels.get(int(request.match_info["channel_id"]))
        if channel is None:
            raise DiscordError(404, UNKNOWN_CHANNEL, "Unknown Channel")
        return channel

    def _upload_limit(self, channel: Channel) -> int:
        return channel.guild.upload_limit if channel.guild is not None else DEFAULT_UPLOAD_LIMIT

    def _message_fields(
        self,
        body: dict[str, Any],
        files: list[UploadedFile],
        channel: Channel,
        *,
        existing: Message | None = None,
        ephemeral: bool = False,
    ) -> dict[str, Any]:
        """Model fields from a message create/edit body; files become attachments on the CDN."""
        fields: dict[str, Any] = {}
        if "content" in body or existing is None:
            fields["content"] = body.get("content") or ""
        if "embeds" in body or existing is None:
            fields["embeds"] = [{"type": "rich", **embed} for embed in body.get("embeds") or []]
        if "components" in body or existing is None:
            fields["components"] = list(body.get("components") or [])
        if "flags" in body and body["flags"] is not None:
            base = existing.flags if existing is not None else 0
            fields["flags"] = (base & ~SETTABLE_FLAGS) | (int(body["flags"]) & SETTABLE_FLAGS)

        described = {str(a.get("id")): a for a in body.get("attachments") or [] if isinstance(a, dict)}
        attachments: list[Attachment] = []
        if existing is not None:
            keep = (
                existing.attachments
                if "attachments" not in body
                else [a for a in existing.attachments if str(a.id) in described]
            )
            attachments.extend(keep)
        for file in files:
            meta = described.get(str(file.index), {})
            filename = meta.get("filename") or file.filename
            content_type = file.content_type
            if content_type in (None, "application/octet-stream"):
                # Discord sniffs the type of an upload; discord.py declares none (aiohttp says octet-stream).
                content_type = mimetypes.guess_type(filename)[0] or content_type
            hosted = self.world.host_attachment(channel.id, filename, file.data, content_type, ephemeral=ephemeral)
            hosted.description = meta.get("description")
            attachments.append(hosted)
        if existing is None or files or "attachments" in body:
            fields["attachments"] = attachments
        return fields

    def _respond_message(self, message: Message) -> web.Response:
        return json_response(message.payload(self.world))

    # --- identity and commands ------------------------------------------------------------------

    async def get_me(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return json_response(
            {**self.world.bot.payload(), "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}
        )

    async def get_user(self, request: web.Request) -> web.Response:
        self._authorize(request)
        user = self.world.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise DiscordError(404, UNKNOWN_USER, "Unknown User")
        return json_response(user.payload())

    async def get_application(self, request: web.Request) -> web.Response:
        self._authorize(request)
        world = self.world
        return json_response(
            {
                "id": str(world.application_id),
                "name": world.bot.name,
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "hook": True,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": world.owner.payload(),
                "team": None,
                "bot": world.bot.payload(),
                "rpc_origins": [],
                "redirect_uris": [],
                "tags": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(world.guilds),
                "integration_types_config": {"0": {}},
            }
        )

    def _command_scope(self, request: web.Request) -> int | None:
        if int(request.match_info["application_id"]) != self.world.application_id:
            raise DiscordError(403, 50001, "Missing Access")
        if "guild_id" not in request.match_info:
            return None
        guild_id = int(request.match_info["guild_id"])
        if guild_id not in self.world.guilds:
            raise DiscordError(403, 50001, "Missing Access")
        return guild_id

    async def get_commands(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return json_response(self.world.commands.get(self._command_scope(request), []))

    async def put_commands(self, request: web.Request) -> web.Response:
        """Bulk overwrite (what tree.sync() sends). Known names keep their ids, as on Discord."""
        self._authorize(request)
        scope = self._command_scope(request)
        body = request[BODY] or []
        rules.check_commands(body)
        previous = {(c["type"], c["name"]): c for c in self.world.commands.get(scope, [])}
        stored = []
        for command in body:
            kind = command.get("type") or 1
            old = previous.get((kind, command["name"]))
            record = {
                "id": old["id"] if old else str(self.world.ids.next()),
                "application_id": str(self.world.application_id),
                "version": str(self.world.ids.next()),
                "type": kind,
                "name": command["name"],
                "name_localizations": command.get("name_localizations"),
                "description": command.get("description") or "",
                "description_localizations": command.get("description_localizations"),
                "options": command.get("options") or [],
                "default_member_permissions": command.get("default_member_permissions"),
                "dm_permission": command.get("dm_permission", True),
                "contexts": command.get("contexts"),
                "integration_types": command.get("integration_types") or [0],
                "nsfw": bool(command.get("nsfw", False)),
            }
            if scope is not None:
                record["guild_id"] = str(scope)
            stored.append(record)
        self.world.commands[scope] = stored
        self.world.changed()
        return json_response(stored)

    # --- interaction callbacks -------------------------------------------------------------------

    async def interaction_callback(self, request: web.Request) -> web.Response:
        received = request[RECEIVED_AT]
        interaction = self.world.interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.token != request.match_info["interaction_token"]:
            raise DiscordError(404, UNKNOWN_INTERACTION, "Unknown interaction")
        if interaction.callback_type is not None:
            interaction.rejected.append((400, ALREADY_ACKNOWLEDGED))
            self.world.changed()
            raise DiscordError(400, ALREADY_ACKNOWLEDGED, "Interaction has already been acknowledged.")
        if received - interaction.dispatched_at > ACK_DEADLINE_S:
            interaction.rejected.append((404, UNKNOWN_INTERACTION))
            self.world.changed()
            raise DiscordError(404, UNKNOWN_INTERACTION, "Unknown interaction")

        body = request[BODY]
        kind = body["type"]
        data = body.get("data") or {}
        files: list[UploadedFile] = request[FILES]
        channel = interaction.channel
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_UPLOAD_LIMIT)
        on_message = interaction.message is not None  # components (and modals opened from one) have a message
        allowed = {
            APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
            MESSAGE_COMPONENT: {
                CHANNEL_MESSAGE,
                DEFERRED_CHANNEL_MESSAGE,
                DEFERRED_UPDATE_MESSAGE,
                UPDATE_MESSAGE,
                MODAL,
            },
            MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE}
            | ({DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE} if on_message else set()),
        }[interaction.type]
        if kind not in allowed:
            raise form_error(
                ["type"],
                "INTERACTION_RESPONSE_TYPE_INVALID",
                f"Callback type {kind} is not valid for interaction type {interaction.type}",
            )

        created: Message | None = None
        updated: Message | None = None
        if kind == CHANNEL_MESSAGE:
            rules.check_message(data, files, limit, at=["data"])
            ephemeral = bool((data.get("flags") or 0) & EPHEMERAL)
            fields = self._message_fields(data, files, channel, ephemeral=ephemeral)
            fields["flags"] = fields.get("flags", 0) | (EPHEMERAL if ephemeral else 0)
            created = self._response_message(interaction, fields)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            ephemeral = bool((data.get("flags") or 0) & EPHEMERAL)
            created = self._response_message(interaction, {"flags": LOADING | (EPHEMERAL if ephemeral else 0)})
        elif kind == UPDATE_MESSAGE:
            assert interaction.message is not None
            rules.check_message(data, files, limit, at=["data"], creating=False)
            fields = self._message_fields(data, files, channel, existing=interaction.message)
            self.world.edit_message(interaction.message, **fields)
            updated = interaction.message
        elif kind == MODAL:
            interaction.modal = data

        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            interaction._original = interaction.message
        interaction._response_flags = interaction._original.flags if interaction._original is not None else 0
        interaction.callback_type = kind
        interaction.callback_at = received
        if created is not None:
            await self.gateway.dispatch_message("MESSAGE_CREATE", created)
        if updated is not None:
            await self.gateway.dispatch_message("MESSAGE_UPDATE", updated)
        self.world.changed()

        if request.query.get("with_response") not in ("1", "true", "True"):
            return no_content()
        # discord.py 2.7 asks for this and parses `interaction` from it; a bare 204 makes defer() raise.
        message = interaction._original
        callback: dict[str, Any] = {
            "interaction": {
                "id": str(interaction.id),
                "type": interaction.type,
                "activity_instance_id": None,
                "response_message_id": str(message.id) if message is not None else None,
                "response_message_loading": bool(message is not None and message.loading),
                "response_message_ephemeral": bool(message is not None and message.ephemeral),
            },
            "resource": {"type": kind},
        }
        if message is not None and kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, UPDATE_MESSAGE):
            callback["resource"]["message"] = message.payload(self.world)
        return json_response(callback)

    def _response_message(self, interaction: Interaction, fields: dict[str, Any]) -> Message:
        kind = CHAT_INPUT_COMMAND_MESSAGE if interaction.type == APPLICATION_COMMAND else REPLY_MESSAGE
        message = self.world.new_message(
            interaction.channel, self.world.bot, type=kind, interaction=interaction, **fields
        )
        interaction._original = message
        return message

    # --- webhooks: follow-ups and the original response ------------------------------------------

    def _webhook_interaction(self, request: web.Request) -> Interaction:
        if int(request.match_info["webhook_id"]) != self.world.application_id:
            raise DiscordError(404, UNKNOWN_WEBHOOK, "Unknown Webhook")
        interaction = self.world.interactions_by_token.get(request.match_info["webhook_token"])
        if interaction is None:
            raise DiscordError(401, INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        if request[RECEIVED_AT] - interaction.dispatched_at > TOKEN_LIFETIME_S:
            raise DiscordError(401, INVALID_WEBHOOK_TOKEN, "Invalid Webhook Token")
        return interaction

    def _webhook_message(self, request: web.Request, interaction: Interaction) -> Message:
        message_id = request.match_info.get("message_id")
        if message_id is None:  # the @original route
            message = interaction._original
        else:
            wanted = int(message_id)
            candidates = [interaction._original, *interaction.followups]
            message = next((m for m in candidates if m is not None and m.id == wanted), None)
        if message is None or message.deleted:
            raise DiscordError(404, UNKNOWN_MESSAGE, "Unknown Message")
        return message

    async def create_followup(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        if interaction.callback_type is None:
            # Discord knows no webhook for an interaction that was never acknowledged.
            raise DiscordError(404, UNKNOWN_WEBHOOK, "Unknown Webhook")
        body = request[BODY] or {}
        files: list[UploadedFile] = request[FILES]
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_UPLOAD_LIMIT)
        rules.check_message(body, files, limit)
        original = interaction._original
        thinking = interaction.callback_type == DEFERRED_CHANNEL_MESSAGE
        if original is not None and original.loading and not original.deleted and thinking:
            # As on Discord: the first follow-up after a deferred "thinking" response fills in that
            # message (keeping the defer's ephemerality). It is both the original and followups[0].
            # Once that message is deleted, a follow-up is a message of its own, with its own flags.
            fields = self._message_fields(
                body, files, interaction.channel, existing=original, ephemeral=original.ephemeral
            )
            fields["flags"] = original.flags & ~LOADING
            self.world.edit_message(original, **fields)
            message = original
            event = "MESSAGE_UPDATE"
        else:
            ephemeral = bool((body.get("flags") or 0) & EPHEMERAL)
            fields = self._message_fields(body, files, interaction.channel, ephemeral=ephemeral)
            fields["flags"] = fields.get("flags", 0) | (EPHEMERAL if ephemeral else 0)
            message = self.world.new_message(
                interaction.channel, self.world.bot, type=DEFAULT_MESSAGE, interaction=interaction, **fields
            )
            event = "MESSAGE_CREATE"
        interaction.followups.append(message)
        await self.gateway.dispatch_message(event, message)
        self.world.changed()
        if request.query.get("wait") in ("1", "true", "True"):
            return self._respond_message(message)
        return no_content()

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        return self._respond_message(self._webhook_message(request, interaction))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        body = request[BODY] or {}
        files: list[UploadedFile] = request[FILES]
        limit = interaction.payload.get("attachment_size_limit", DEFAULT_UPLOAD_LIMIT)
        rules.check_message(body, files, limit, creating=False)
        fields = self._message_fields(body, files, message.channel, existing=message, ephemeral=message.ephemeral)
        fields["flags"] = fields.get("flags", message.flags) & ~LOADING  # an edit fills in a deferred response
        if message.ephemeral:
            fields["flags"] |= EPHEMERAL
        self.world.edit_message(message, **fields)
        await self.gateway.dispatch_message("MESSAGE_UPDATE", message)
        self.world.changed()
        return self._respond_message(message)

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        message = self._webhook_message(request, interaction)
        self.world.delete_message(message)
        await self.gateway.dispatch_delete(message)
        self.world.changed()
        return no_content()

    # --- channels and messages ------------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        self._authorize(request)
        return json_response(self._channel(request).payload())

    def _channel_message(self, request: web.Request, channel: Channel) -> Message:
        message = self.world.messages.get(int(request.match_info["message_id"]))
        # Ephemeral messages exist only for their recipient: the channel routes do not see them.
        if message is None or message.deleted or message.channel is not channel or message.ephemeral:
            raise DiscordError(404, UNKNOWN_MESSAGE, "Unknown Message")
        return message

    async def get_channel_messages(self, request: web.Request) -> web.Response:
        self._authorize(request)
        channel = self._channel(request)
        messages = [m for m in channel.messages if not m.ephemeral]
        if "before" in request.query:
            messages = [m for m in messages if m.id < int(request.query["before"])]
        if "after" in request.query:
            messages = [m for m in messages if m.id > int(request.query["after"])]
        limit = int(request.query.get("limit", 50))
        newest_first = list(reversed(messages))[:limit]
        return json_response([m.payload(self.world) for m in newest_first])

    async def create_channel_message(self, request: web.Request) -> web.Response:
        self._authorize(request)
        channel = self._channel(request)
        body = request[BODY] or {}
        files: list[UploadedFile] = request[FILES]
        rules.check_message(body, files, self._upload_limit(channel))
        fields = self._message_fields(body, files, channel)
        kind = REPLY_MESSAGE if body.get("message_reference") else DEFAULT_MESSAGE
        message = self.world.new_message(channel, self.world.bot, type=kind, **fields)
        await self.gateway.dispatch_message("MESSAGE_CREATE", message)
        self.world.changed()
        return self._respond_message(message)

    async def get_channel_message(self, request: web.Request) -> web.Response:
        self._authorize(request)
        channel = self._channel(request)
        return self._respond_message(self._channel_message(request, channel))

    async def edit_channel_message(self, request: web.Request) -> web.Response:
        self._authorize(request)
        channel = self._channel(request)
        message = self._channel_message(request, channel)
        if message.author is not self.world.bot:
            raise DiscordError(403, CANNOT_EDIT_OTHERS_MESSAGE, "Cannot edit a message authored by another user")
        body = request[BODY] or {}
        files: list[UploadedFile] = request[FILES]
        rules.check_message(body, files, self._upload_limit(channel), creating=False)
        fields = self._message_fields(body, files, channel, existing=message)
        self.world.edit_message(message, **fields)
        await self.gateway.dispatch_message("MESSAGE_UPDATE", message)
        self.world.changed()
        return self._respond_message(message)

    async def delete_channel_message(self, request: web.Request) -> web.Response:
        self._authorize(request)
        channel = self._channel(request)
        message = self._channel_message(request, channel)
        if message.author is not self.world.bot:
            bot_member = channel.guild.members.get(self.world.bot.id) if channel.guild is not None else None
            if bot_member is None or not bot_member.permissions() & MANAGE_MESSAGES:
                raise DiscordError(403, 50013, "Missing Permissions")
        self.world.delete_message(message)
        await self.gateway.dispatch_delete(message)
        self.world.changed()
        return no_content()

    async def open_dm(self, request: web.Request) -> web.Response:
        self._authorize(request)
        user = self.world.users.get(int((request[BODY] or {})["recipient_id"]))
        if user is None or user.bot:
            raise DiscordError(400, 50033, "Invalid Recipient(s)")
        return json_response(self.world.dm_channel(user).payload())

    # --- guilds and members ---------------------------------------------------------------------

    async def get_guild(self, request: web.Request) -> web.Response:
        self._authorize(request)
        guild = self.world.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            raise DiscordError(404, UNKNOWN_GUILD, "Unknown Guild")
        data = guild.rest_payload()
        if request.query.get("with_counts") in ("1", "true", "True"):
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return json_response(data)

    async def get_member(self, request: web.Request) -> web.Response:
        self._authorize(request)
        guild = self.world.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            raise DiscordError(404, UNKNOWN_GUILD, "Unknown Guild")
        member = guild.members.get(int(request.match_info["user_id"]))
        if member is None:
            raise DiscordError(404, UNKNOWN_MEMBER, "Unknown Member")
        return json_response(member.payload())
