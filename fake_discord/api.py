"""`FakeDiscord`: the test-facing API of the stand-in.

Methods that drive the bot (`slash`, `click`, `dm`, ...) are coroutines awaited on the test's
loop (where the bot runs); they hand their work to the stand-in's loop and await the result, so
nothing here blocks the bot. World building (`add_guild`, `guild.add_member`, ...) is synchronous
and meant for before the bot connects; adding later is dispatched to a connected bot too
(GUILD_CREATE, CHANNEL_CREATE, GUILD_MEMBER_ADD, GUILD_ROLE_CREATE), but only those: nothing
is ever updated or removed from the world.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

import discord
import yarl
from aiohttp import web

from . import interactions as build
from .cdn import CDN
from .clock import Clock
from .errors import ErrorLog, Expectation, RecordedError
from .gateway import HEARTBEAT_INTERVAL_MS, Gateway
from .interactions import FileSpec
from .model import Attachment, Channel, Guild, Interaction, Member, Message, User, World
from .openapi import API_PREFIX, OpenAPI
from .rest import RestAPI
from .server import Bridge, ServerThread

T = TypeVar("T")


class FakeDiscord:
    """A local Discord for one test: REST on /api/v10, the gateway on /gateway, files on /attachments.

    Usage: `fake = FakeDiscord().start()` ... `fake.close()`, or `with FakeDiscord() as fake:`;
    the `fake_discord` fixture of fake_discord/fixtures.py does this and checks errors.
    """

    def __init__(
        self, *, token: str = "test-token", bot_name: str = "doppel", spec: OpenAPI | None = None,
        heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS,
    ) -> None:
        self.token = token
        self.clock = Clock()
        self.errors = ErrorLog()
        self._bridge = Bridge()
        self.world = World(self.clock, self._bridge, bot_name=bot_name)
        self.gateway = Gateway(self.world, token, heartbeat_interval_ms)
        self.spec = spec or OpenAPI.load()
        self._server = ServerThread(self._bridge, self.errors, self.spec, now=self.clock.now)
        rest = RestAPI(self.world, self.gateway, token)
        for route in rest.routes():
            template = route.path[len(API_PREFIX) :]
            # Every served route must be an operation of the spec, or its body could escape validation.
            assert self.spec.has_operation(route.method, template), f"{route.method} {template} is not in openapi.json"
        self._server.app.add_routes(
            [*rest.routes(), *CDN(self.world).routes(), web.get("/gateway", self.gateway.handle)]
        )
        self._server.after_record = self.world.changed
        self._server.app.on_shutdown.append(lambda app: self.gateway.close())

    # --- life cycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        self._server.start()
        self.world.base_url = self._server.base_url
        self.gateway.url = self.gateway_url
        return self

    def close(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def api_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self._server.port}/gateway"

    @contextlib.contextmanager
    def patch_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST base and gateway at the stand-in; restores the previous values on exit.

        Both are class attributes, so this affects every client in the process while it lasts.
        """
        saved = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
        discord.http.Route.BASE = self.api_url
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved

    # --- the world -----------------------------------------------------------------------------

    @property
    def bot_user(self) -> User:
        return self.world.bot

    @property
    def application_id(self) -> int:
        return self.world.application_id

    async def read(self, view: Callable[[World], T]) -> T:
        """`view(world)` run on the stand-in's loop, so it sees no change half made (for a viewer such as
        the playground's page: the world's objects may be read safely only there)."""
        return await self._bridge.call(view, self.world)

    def add_guild(self, name: str) -> Guild:
        return self._bridge.call_sync(self.world.add_guild, name)

    def commands(self, guild: Guild | None = None) -> list[dict]:
        """The commands as the bot registered them (global, or for `guild`), with their ids."""
        return self._bridge.call_sync(
            lambda: [dict(c) for c in self.world.commands.get(guild.id if guild else None, [])]
        )

    async def dm_channel(self, member: Member | User) -> Channel:
        """The DM channel between `member` and the bot (created on first use, as Discord does)."""
        user = member.user if isinstance(member, Member) else member
        return await self._bridge.call(self.world.dm_channel, user)

    def host_attachment(self, channel: Channel, filename: str, data: bytes, content_type: str | None) -> Attachment:
        """Put a file on the CDN, declared as `content_type` whether that is true or not."""
        return self._bridge.call_sync(self.world.host_attachment, channel.id, filename, data, content_type)

    # --- the clock and errors ------------------------------------------------------------------

    def advance_clock(self, seconds: float) -> None:
        """Move the stand-in's clock (its 3 s and 15 min deadlines) forward without sleeping."""
        self.clock.advance(seconds)

    def expect_error(self, status: int, code: int | None = None) -> Expectation:
        """Declare that this test provokes responses of `status` (and Discord `code`); any number may occur.

        Returns the expectation; its `seen` counts matching responses so far.
        """
        return self.errors.expect(status, code)

    def recorded_errors(self) -> list[RecordedError]:
        return list(self.errors.errors)

    def unexpected_errors(self) -> list[RecordedError]:
        return self.errors.unexpected()

    async def wait_for_error(self, status: int, code: int | None = None, timeout: float = 10) -> RecordedError:
        """The first recorded error response of `status` (and `code`), already sent or still to come.

        Waiting does not declare it expected: call expect_error as well.
        """

        def check() -> RecordedError | None:
            found = (e for e in self.errors.errors if e.status == status and code in (None, e.code))
            return next(found, None)

        return await self.world.wait(check, timeout, f"an error response {status} code={code}")

    @property
    def interactions(self) -> list[Interaction]:
        """Every interaction sent to the bot, in dispatch order."""
        return self._bridge.call_sync(lambda: list(self.world.interactions.values()))

    def ack_latencies_ms(self) -> list[float]:
        """Dispatch-to-callback times (ms, stand-in clock) of every acknowledged interaction, in dispatch order.

        For a benchmark: dispatch many with asyncio.gather(fake.slash(...) ...), await each
        `inter.acknowledged()`, then read these.
        """
        return [i.ack_ms for i in self.interactions if i.ack_ms is not None]

    # --- driving the bot -----------------------------------------------------------------------

    async def _send_interaction(self, make: Callable[[], Interaction]) -> Interaction:
        async def on_stand_in_loop() -> Interaction:
            if not self.gateway.connected:
                raise RuntimeError("fake-discord: no bot is connected to the gateway")
            interaction = make()
            self.world.interactions[interaction.id] = interaction
            self.world.interactions_by_token[interaction.token] = interaction
            interaction.dispatched_at = self.clock.now()
            await self.gateway.dispatch("INTERACTION_CREATE", interaction.payload)
            return interaction

        return await self._bridge.call(on_stand_in_loop)

    async def slash(
        self,
        member: Member | User,
        channel: Channel,
        name: str,
        options: Mapping[str, Any] | None = None,
        attachments: Mapping[str, FileSpec | Attachment] | None = None,
        *,
        locale: str = "en-US",
        override_permissions: bool = False,
    ) -> Interaction:
        """Invoke the registered command `name` ("group sub" for subcommands) as `member` in `channel`.

        Option values: str, int, float, bool, or stand-in Member/User/Role/Channel objects; files for
        attachment options go in `attachments` as (filename, bytes, content_type). Raises
        InvalidInteraction for what no Discord client could send, and its subclass CommandNotAvailable
        when the member could not use the command here: a guild-only command in a DM, or a member
        without the command's default_member_permissions. `override_permissions=True` stands for a
        server admin's per-command override (Server Settings > Integrations) and lets such a member
        through, to test the bot's own permission check.
        """
        return await self._send_interaction(
            lambda: build.build_slash(
                self.world, member, channel, name, options, attachments, locale, override_permissions
            )
        )

    async def click(
        self, member: Member | User, message: Message, custom_id: str, values: list[Any] | None = None
    ) -> Interaction:
        """Press a button (or choose `values` in a select menu) on a message the bot sent."""
        return await self._send_interaction(lambda: build.build_click(self.world, member, message, custom_id, values))

    async def submit_modal(
        self, member: Member | User, opened_by: Interaction, values: Mapping[str, Any]
    ) -> Interaction:
        """Submit the modal that `opened_by` answered with (callback 9): {text input custom_id: text}."""
        return await self._send_interaction(lambda: build.build_modal_submit(self.world, member, opened_by, values))

    async def dm(self, member: Member | User, content: str = "", attachments: Sequence[FileSpec] = ()) -> Message:
        """`member` writes to the bot in their DM channel (MESSAGE_CREATE without guild_id)."""
        user = member.user if isinstance(member, Member) else member

        async def on_stand_in_loop() -> Message:
            channel = self.world.dm_channel(user)
            return await self._post_as(user, channel, content, attachments)

        return await self._bridge.call(on_stand_in_loop)

    async def say(
        self, member: Member, channel: Channel, content: str = "", attachments: Sequence[FileSpec] = ()
    ) -> Message:
        """`member` posts in a guild channel (the bot sees the content only with the message_content intent
        or when mentioned, as on Discord)."""
        return await self._bridge.call(self._post_as, member.user, channel, content, attachments)

    async def _post_as(self, user: User, channel: Channel, content: str, attachments: Sequence[FileSpec]) -> Message:
        if not self.gateway.connected:
            raise RuntimeError("fake-discord: no bot is connected to the gateway")
        hosted = [self.world.host_attachment(channel.id, name, data, ctype) for name, data, ctype in attachments]
        message = self.world.new_message(channel, user, content=content, attachments=hosted)
        await self.gateway.dispatch_message("MESSAGE_CREATE", message)
        self.world.changed()
        return message

    async def wait_for_edit(
        self, message: Message, predicate: Callable[[Message], bool] | None = None, timeout: float = 10
    ) -> Message:
        """Wait until the bot's edits make `predicate(message)` true (checked now and after every change);
        without a predicate, wait for the next edit."""
        edits = message.edits

        def check() -> Message | None:
            if predicate is None:
                return message if message.edits > edits else None
            return message if predicate(message) else None

        return await self.world.wait(check, timeout, f"an edit of message {message.id}")

    async def wait_until_connected(self, timeout: float = 10) -> None:
        await self.world.wait(lambda: True if self.gateway.connected else None, timeout, "a bot on the gateway")

    async def reconnect_gateway(self, timeout: float = 10) -> None:
        """Send RECONNECT (op 7) and wait until the bot has RESUMED its session."""

        async def on_stand_in_loop() -> int:
            before = sum(s.resumes for s in self.gateway.sessions.values())
            await self.gateway.reconnect()
            return before

        before = await self._bridge.call(on_stand_in_loop)

        def resumed() -> bool | None:
            return True if sum(s.resumes for s in self.gateway.sessions.values()) > before else None

        await self.world.wait(resumed, timeout, "the bot to resume its gateway session")
