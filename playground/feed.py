"""What one page shows, kept up to date: the messages of a channel that its member may see, and the bot's state.

The stand-in tells its observers of every change on its own thread; `Feed` wakes the page's loop, reads the
channel there through `FakeDiscord.read` (a consistent view) and yields only what changed since the last look.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fake_discord import Channel, FakeDiscord, Member, Message
from fake_discord.model import World

from .cast import Cast
from .render import message_html

DM = "dm"


@dataclass
class Viewer:
    """A member looking at #general or at their direct messages with the bot."""

    member: Member
    place: str  # "general" or DM
    shown: dict[int, int] = field(default_factory=dict)  # message id -> edits shown

    def channel(self, world: World, cast: Cast) -> Channel:
        return world.dm_channel(self.member.user) if self.place == DM else cast.general

    def sees(self, message: Message) -> bool:
        if message.deleted:
            return False
        if not message.ephemeral:
            return True
        return message.interaction is not None and message.interaction.user is self.member.user

    def changes(self, world: World, cast: Cast) -> list[tuple[str, dict]]:
        """(event, data) for each message added, edited or gone since the last call. Runs on the stand-in's loop."""
        events: list[tuple[str, dict]] = []
        now = {m.id: m for m in self.channel(world, cast).messages if self.sees(m)}
        for gone in [i for i in self.shown if i not in now]:
            del self.shown[gone]
            events.append(("remove", {"id": str(gone)}))  # as text: snowflakes exceed JavaScript's exact integers
        for message_id, message in now.items():
            if self.shown.get(message_id) != message.edits:
                self.shown[message_id] = message.edits
                events.append(("message", {"id": str(message_id), "html": message_html(message, world)}))
        return events


class Feed:
    def __init__(self, fake: FakeDiscord, cast: Cast) -> None:
        self.fake = fake
        self.cast = cast
        self.status = "starting: Ray, the model and the bot (a minute or two the first time)"
        self.online = False
        self.came_online = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._wakers: set[asyncio.Event] = set()
        fake.world.observers.append(self._changed)

    def _changed(self) -> None:  # on the stand-in's thread
        self._loop.call_soon_threadsafe(self._wake)

    def set_status(self, text: str, *, online: bool = False) -> None:
        self.status, self.online = text, online
        if online:
            self.came_online.set()
        self._wake()

    def _wake(self) -> None:
        for waker in self._wakers:
            waker.set()

    async def follow(self, viewer: Viewer) -> AsyncIterator[tuple[str, dict]]:
        """Everything the viewer sees now, then each change as it happens; ends when the consumer stops."""
        status = None
        while True:
            waker = asyncio.Event()  # before reading: a change made while reading is not missed
            self._wakers.add(waker)
            try:
                for event in await self.fake.read(lambda world: viewer.changes(world, self.cast)):
                    yield event
                if (self.status, self.online) != status:
                    status = (self.status, self.online)
                    yield "status", {"text": self.status, "online": self.online}
                await waker.wait()
            finally:
                self._wakers.discard(waker)
