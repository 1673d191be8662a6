"""The stand-in's world: users, guilds, channels, messages, attachments, interactions.

Ownership and threads: every object here is mutated only on the stand-in's event loop (REST and
gateway handlers run there; the test-facing methods hand their work over with `Bridge`). Tests
read attributes directly; read them after awaiting one of the `wait_*` helpers, which return
only once the stand-in's loop has finished the change they wait for.

Payload builders (`payload()`) produce the JSON discord.py parses, with every field its parsers
index directly (e.g. member `flags`, interaction `attachment_size_limit`).
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .clock import Clock, Snowflakes, iso

if TYPE_CHECKING:
    from .server import Bridge

# Permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1

EVERYONE_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)

# Message flags.
EPHEMERAL = 1 << 6
LOADING = 1 << 7  # a deferred ("thinking") interaction response not yet filled in

# Channel and message types.
GUILD_TEXT = 0
DM = 1
DEFAULT_MESSAGE = 0
CHAT_INPUT_COMMAND_MESSAGE = 20
REPLY_MESSAGE = 19

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # an unboosted guild's per-file limit (and a DM's)

_MENTION = re.compile(r"<@!?(\d+)>")


@dataclass
class UploadedFile:
    """A file as the bot uploaded it (multipart field `files[n]`), before the stand-in hosts it."""

    index: int
    filename: str
    content_type: str | None
    data: bytes


@dataclass(eq=False)
class User:
    id: int
    name: str
    bot: bool = False

    def __repr__(self) -> str:
        return f"<User {self.name} id={self.id}{' bot' if self.bot else ''}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": None if self.bot else self.name,
            "avatar": None,
            "bot": self.bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }


@dataclass(eq=False)
class Role:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def __repr__(self) -> str:
        return f"<Role {self.name} id={self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }


@dataclass(eq=False)
class Member:
    user: User
    guild: Guild
    roles: list[Role] = field(default_factory=list)
    joined_at: datetime | None = None

    def __repr__(self) -> str:
        return f"<Member {self.name} id={self.id} guild={self.guild.name!r}>"

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def name(self) -> str:
        return self.user.name

    def permissions(self) -> int:
        if self.user.id == self.guild.owner_id:
            return ALL_PERMISSIONS
        value = self.guild.everyone.permissions
        for role in self.roles:
            value |= role.permissions
        return ALL_PERMISSIONS if value & ADMINISTRATOR else value

    def payload(self, *, with_user: bool = True, with_permissions: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "nick": None,
            "avatar": None,
            "banner": None,
            "roles": [str(role.id) for role in self.roles],
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,  # discord.py indexes it: KeyError without
            "communication_disabled_until": None,
        }
        if with_user:
            data["user"] = self.user.payload()
        if with_permissions:
            data["permissions"] = str(self.permissions())
        return data


@dataclass(eq=False)
class Attachment:
    """A file hosted on the stand-in's CDN. `content_type` is what was declared, true or not."""

    id: int
    filename: str
    content_type: str | None
    data: bytes
    url: str
    description: str | None = None
    ephemeral: bool = False

    def __repr__(self) -> str:
        return f"<Attachment {self.filename!r} {self.content_type} {self.size} bytes id={self.id}>"

    @property
    def size(self) -> int:
        return len(self.data)

    async def read(self) -> bytes:
        return self.data

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass(eq=False)
class Message:
    id: int
    channel: Channel
    author: User
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = DEFAULT_MESSAGE
    created_at: datetime | None = None
    edited_at: datetime | None = None
    interaction: Interaction | None = None  # the interaction this message answers, if any
    deleted: bool = False
    edits: int = 0
    versions: list[dict[str, Any]] = field(default_factory=list)  # snapshots, oldest first, current last

    def __repr__(self) -> str:
        return (
            f"<Message id={self.id} in #{self.channel.name} by {self.author.name} content={self.content[:40]!r}"
            f" flags={self.flags} edits={self.edits}{' deleted' if self.deleted else ''}>"
        )

    @property
    def channel_id(self) -> int:
        return self.channel.id

    @property
    def author_id(self) -> int:
        return self.author.id

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    def snapshot(self) -> None:
        self.versions.append(
            {
                "content": self.content,
                "embeds": copy.deepcopy(self.embeds),
                "components": copy.deepcopy(self.components),
                "attachments": [a.filename for a in self.attachments],
                "flags": self.flags,
            }
        )

    def iter_components(self) -> Iterator[dict]:
        """Every component, depth first (action rows, sections, containers and what they hold)."""
        stack = list(reversed(self.components))
        while stack:
            component = stack.pop()
            yield component
            children = list(component.get("components") or [])
            if component.get("accessory"):
                children.append(component["accessory"])
            if component.get("component"):
                children.append(component["component"])
            stack.extend(reversed(children))

    def buttons(self) -> list[tuple[str | None, str | None, bool]]:
        """(custom_id, label, disabled) of every button; link buttons have custom_id None."""
        return [
            (c.get("custom_id"), c.get("label"), bool(c.get("disabled", False)))
            for c in self.iter_components()
            if c.get("type") == 2
        ]

    def find_component(self, custom_id: str) -> dict | None:
        return next((c for c in self.iter_components() if c.get("custom_id") == custom_id), None)

    def mentions(self, world: World) -> list[User]:
        found = (world.users.get(int(uid)) for uid in _MENTION.findall(self.content))
        return [user for user in found if user is not None]

    def payload(self, world: World, *, gateway: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel.id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at),
            "tts": False,
            "mention_everyone": False,
            "mentions": [user.payload() for user in self.mentions(world)],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": copy.deepcopy(self.embeds),
            "components": copy.deepcopy(self.components),
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.interaction is not None:
            data["webhook_id"] = str(world.application_id)
            data["application_id"] = str(world.application_id)
            data["interaction_metadata"] = self.interaction.metadata()
        guild = self.channel.guild
        if gateway and guild is not None:
            data["guild_id"] = str(guild.id)
            member = guild.members.get(self.author.id)
            if member is not None and self.interaction is None:
                data["member"] = member.payload(with_user=False)
        return data


@dataclass(eq=False)
class Channel:
    id: int
    name: str
    type: int
    world: World
    guild: Guild | None = None
    recipient: User | None = None  # for DMs: the member at the other end
    position: int = 0
    messages: list[Message] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<Channel #{self.name} id={self.id} type={self.type}>"

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    def payload(self, *, with_guild_id: bool = True) -> dict[str, Any]:
        last = self.messages[-1].id if self.messages else None
        if self.is_dm:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": DM,
                "recipients": [self.recipient.payload()],
                "last_message_id": None if last is None else str(last),
                "flags": 0,
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "last_message_id": None if last is None else str(last),
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }
        if with_guild_id and self.guild is not None:
            data["guild_id"] = str(self.guild.id)
        return data

    async def wait_for_message(
        self, predicate: Callable[[Message], bool] | None = None, timeout: float = 10
    ) -> Message:
        """The first message in this channel, already there or still to come, that satisfies `predicate`."""
        predicate = predicate or (lambda m: True)

        def check() -> Message | None:
            return next((m for m in self.messages if not m.deleted and predicate(m)), None)

        return await self.world.wait(check, timeout, f"a message in #{self.name} matching the predicate")


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    world: World
    owner_id: int = 0
    everyone: Role = None  # type: ignore[assignment]  # set in World.add_guild
    roles: list[Role] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    channels: list[Channel] = field(default_factory=list)
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    locale: str = "en-US"

    def __repr__(self) -> str:
        return f"<Guild {self.name!r} id={self.id}>"

    # --- test-facing world building (thread-safe: runs on the stand-in's loop) ---

    def add_member(self, name: str, *, manage_guild: bool = False, roles: tuple[Role, ...] = ()) -> Member:
        return self.world.bridge.call_sync(self.world.add_member, self, name, manage_guild, roles)

    def add_text_channel(self, name: str) -> Channel:
        return self.world.bridge.call_sync(self.world.add_channel, self, name)

    def add_role(self, name: str, permissions: int = 0) -> Role:
        return self.world.bridge.call_sync(self.world.add_role, self, name, permissions)

    def set_member_roles(self, member: Member, roles: tuple[Role, ...]) -> None:
        """A server admin changes a member's roles (Server Settings > Members): GUILD_MEMBER_UPDATE follows, to
        bots with the GUILD_MEMBERS intent only; others see the new roles in interactions and the REST API."""
        self.world.bridge.call_sync(self.world.set_member_roles, self, member, roles)

    # --- payloads ---

    def payload(self) -> dict[str, Any]:
        """The full guild object of GUILD_CREATE (channels, members, roles included)."""
        return {
            **self.rest_payload(),
            "joined_at": iso(self.world.clock.wall()),
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload(with_guild_id=False) for c in self.channels],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def rest_payload(self) -> dict[str, Any]:
        """GET /guilds/{id}."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "region": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }


@dataclass(eq=False)
class Interaction:
    """One interaction sent to the bot, and the test's handle on what the bot did with it."""

    id: int
    token: str
    type: int  # 2 application command, 3 component, 5 modal submit
    world: World
    user: User
    channel: Channel
    member: Member | None = None
    name: str = ""  # the command's full name, or the component's custom_id
    payload: dict[str, Any] = field(default_factory=dict)  # INTERACTION_CREATE's `d`, as sent
    message: Message | None = None  # for components: the message the component is on
    dispatched_at: float = 0.0  # stand-in clock
    callback_type: int | None = None
    callback_at: float | None = None
    modal: dict | None = None  # the modal a type-9 callback opened
    followups: list[Message] = field(default_factory=list)
    rejected: list[tuple[int, int]] = field(default_factory=list)  # (status, code) of refused callbacks
    _original: Message | None = None
    _response_flags: int = 0

    def __repr__(self) -> str:
        return (
            f"<Interaction {self.name!r} type={self.type} id={self.id} "
            f"callback={self.callback_type} ack_ms={self.ack_ms}>"
        )

    @property
    def ack_ms(self) -> float | None:
        """Milliseconds from dispatch to the callback arriving, on the stand-in's clock (None: not acknowledged)."""
        if self.callback_at is None:
            return None
        return (self.callback_at - self.dispatched_at) * 1000

    @property
    def ephemeral(self) -> bool:
        """The response carries flags 64 (for components answered by an update: the message's own flags)."""
        return bool(self._response_flags & EPHEMERAL)

    def metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "user": self.user.payload(),
            "authorizing_integration_owners": self.payload.get("authorizing_integration_owners", {}),
        }
        if self.type == 2:
            data["name"] = self.name
            data["command_type"] = 1
        return data

    async def acknowledged(self, timeout: float = 5) -> int:
        """The callback type once the bot has acknowledged (4, 5, 6, 7 or 9)."""
        return await self.world.wait(lambda: self.callback_type, timeout, f"a callback for interaction {self.name!r}")

    async def original(self, timeout: float = 10) -> Message:
        """The original response once it is filled in: a deferred response counts only after its first edit."""

        def check() -> Message | None:
            message = self._original
            return message if message is not None and not message.loading else None

        return await self.world.wait(check, timeout, f"the original response of {self.name!r}")

    async def wait_followup(self, predicate: Callable[[Message], bool] | None = None, timeout: float = 10) -> Message:
        """The first follow-up, already sent or still to come, that satisfies `predicate`."""
        predicate = predicate or (lambda m: True)

        def check() -> Message | None:
            return next((m for m in self.followups if not m.deleted and predicate(m)), None)

        return await self.world.wait(check, timeout, f"a follow-up to {self.name!r} matching the predicate")


class World:
    """Everything the stand-in knows, and the event-driven waits of the test API."""

    def __init__(self, clock: Clock, bridge: Bridge, *, bot_name: str = "doppel") -> None:
        self.clock = clock
        self.bridge = bridge
        self.ids = Snowflakes(clock)
        self.base_url = ""  # http://127.0.0.1:PORT, set once the server listens
        self.bot = User(self.ids.next(), bot_name, bot=True)
        self.owner = User(self.ids.next(), "owner")
        self.application_id = self.bot.id  # as on Discord, the bot user's id is the application's
        self.users: dict[int, User] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, Guild] = {}
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self.dm_channels: dict[int, Channel] = {}  # user id -> DM channel with the bot
        # Registered application commands as the bot PUT them (with ids added); key None is global.
        self.commands: dict[int | None, list[dict]] = {}
        self.on_entity_added: Callable[[str, dict[str, Any]], None] | None = None  # set by the gateway
        # Called (on the stand-in's loop) after every change: a viewer such as the playground's page.
        self.observers: list[Callable[[], None]] = []
        self._waiters: list[tuple[Callable[[], Any], asyncio.Future]] = []

    # --- waiting -------------------------------------------------------------------------------

    def changed(self) -> None:
        """Re-check every pending wait and tell the observers; called after each change of state."""
        for observer in self.observers:
            observer()
        for waiter in list(self._waiters):
            check, future = waiter
            if future.done():
                self._waiters.remove(waiter)
                continue
            try:
                result = check()
            except Exception as exc:  # a test predicate that raises fails the wait, visibly
                future.set_exception(exc)
                self._waiters.remove(waiter)
                continue
            if result is not None:
                future.set_result(result)
                self._waiters.remove(waiter)

    async def _wait_here(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        result = check()
        if result is not None:
            return result
        future = asyncio.get_running_loop().create_future()
        waiter = (check, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(f"fake-discord: timed out after {timeout} s waiting for {what}") from None
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    async def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """From any loop: wait until `check()` (run on the stand-in's loop) returns something other than None."""
        return await self.bridge.call(self._wait_here, check, timeout, what)

    # --- building (on the stand-in's loop) -----------------------------------------------------

    def add_guild(self, name: str) -> Guild:
        guild = Guild(self.ids.next(), name, self, owner_id=self.owner.id)
        guild.everyone = Role(guild.id, "@everyone", EVERYONE_PERMISSIONS)  # @everyone's id is the guild's
        bot_role = Role(self.ids.next(), self.bot.name, EVERYONE_PERMISSIONS, position=1, managed=True)
        guild.roles = [guild.everyone, bot_role]
        now = self.clock.wall()
        guild.members[self.owner.id] = Member(self.owner, guild, joined_at=now)
        guild.members[self.bot.id] = Member(self.bot, guild, [bot_role], joined_at=now)
        self.guilds[guild.id] = guild
        self._announce("GUILD_CREATE", guild.payload)
        return guild

    def add_role(self, guild: Guild, name: str, permissions: int) -> Role:
        role = Role(self.ids.next(), name, permissions, position=len(guild.roles))
        guild.roles.append(role)
        self._announce("GUILD_ROLE_CREATE", lambda: {"guild_id": str(guild.id), "role": role.payload()})
        return role

    def add_member(self, guild: Guild, name: str, manage_guild: bool, roles: tuple[Role, ...]) -> Member:
        user = User(self.ids.next(), name)
        self.users[user.id] = user
        member_roles = list(roles)
        if manage_guild:
            managers = next((r for r in guild.roles if r.name == "Managers"), None)
            member_roles.append(managers or self.add_role(guild, "Managers", MANAGE_GUILD))
        member = Member(user, guild, member_roles, joined_at=self.clock.wall())
        guild.members[user.id] = member
        self._announce("GUILD_MEMBER_ADD", lambda: {**member.payload(), "guild_id": str(guild.id)})
        return member

    def set_member_roles(self, guild: Guild, member: Member, roles: tuple[Role, ...]) -> None:
        unknown = [role for role in roles if role not in guild.roles]
        if unknown:
            raise ValueError(f"{unknown} are not roles of {guild.name}")
        member.roles = list(roles)
        self._announce("GUILD_MEMBER_UPDATE", lambda: {**member.payload(), "guild_id": str(guild.id)})

    def add_channel(self, guild: Guild, name: str) -> Channel:
        channel = Channel(self.ids.next(), name, GUILD_TEXT, self, guild=guild, position=len(guild.channels))
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        self._announce("CHANNEL_CREATE", lambda: channel.payload())
        return channel

    def dm_channel(self, user: User) -> Channel:
        channel = self.dm_channels.get(user.id)
        if channel is None:
            channel = Channel(self.ids.next(), f"dm-{user.name}", DM, self, recipient=user)
            self.dm_channels[user.id] = channel
            self.channels[channel.id] = channel
        return channel

    def _announce(self, event: str, payload: Callable[[], dict[str, Any]]) -> None:
        """Tell a connected bot about something added after it connected."""
        if self.on_entity_added is not None:
            self.on_entity_added(event, payload())

    # --- messages and files ---------------------------------------------------------------------

    def host_attachment(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None, *, ephemeral: bool = False
    ) -> Attachment:
        attachment_id = self.ids.next()
        url = f"{self.base_url}/attachments/{channel_id}/{attachment_id}/{filename}"
        attachment = Attachment(attachment_id, filename, content_type, data, url, ephemeral=ephemeral)
        self.attachments[attachment_id] = attachment
        return attachment

    def new_message(self, channel: Channel, author: User, **fields: Any) -> Message:
        now = self.clock.wall()
        message = Message(self.ids.next(), channel, author, created_at=now, **fields)
        message.snapshot()
        channel.messages.append(message)
        self.messages[message.id] = message
        return message

    def edit_message(self, message: Message, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(message, name, value)
        message.edited_at = self.clock.wall()
        message.edits += 1
        message.snapshot()

    def delete_message(self, message: Message) -> None:
        message.deleted = True
        if message in message.channel.messages:
            message.channel.messages.remove(message)

    def member_or_user(self, guild: Guild | None, user_id: int) -> Member | User | None:
        if guild is not None and user_id in guild.members:
            return guild.members[user_id]
        return self.users.get(user_id)
