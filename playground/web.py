"""The playground's page and its few routes: the chat, its live feed (server-sent events), and the three
things a visitor does: send (a slash command or a message), press a button or choose in a menu, submit a modal."""

from __future__ import annotations

import functools
import html
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from fake_discord import CommandNotAvailable, FakeDiscord, Interaction, InvalidInteraction, Member
from fake_discord.interactions import FileSpec

from .cast import Cast
from .feed import DM, Feed, Viewer
from .render import modal_html, note_html
from .typed import Command, Unclear, flatten, mentions, parse

log = logging.getLogger(__name__)

MODAL = 9  # the callback type that opens a modal
ACK_WAIT_S = 5  # Discord gives up on an answer after 3 s; a little more, so a late one is reported as late
LOCAL_NAMES = ("127.0.0.1", "localhost")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_UPLOAD = 256 * 2**20  # ten photos at the bot's largest upload limit, and room to spare
STATIC = {"page.css": "text/css", "page.js": "text/javascript"}  # the files /static serves, by content type


class Page:
    def __init__(self, fake: FakeDiscord, cast: Cast, feed: Feed, base_note: str) -> None:
        self.fake = fake
        self.cast = cast
        self.feed = feed
        self.base_note = base_note
        self.modals: dict[int, Interaction] = {}  # interaction id -> the interaction that opened a modal
        self.app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[_own_page_only])
        self.app.add_routes([
            web.get("/", self.index),
            web.get("/events", self.events),
            web.get("/commands", self.commands),
            web.post("/send", self.send),
            web.post("/click", self.click),
            web.post("/modal", self.modal),
            web.get("/static/{name}", self.static),
        ])
        self._runner: web.AppRunner | None = None

    async def start(self, port: int, host: str = LOCAL_NAMES[0]) -> str:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # the port 0 became
        # All addresses: this machine's is one (S104: the address is only compared, nothing binds here).
        shown = LOCAL_NAMES[0] if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        return f"http://{shown}:{bound}/"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- the page ------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        me = self.cast.member(request.query.get("as", ""))
        place = DM if request.query.get("in") == DM else "general"
        members = "".join(
            f'<a class="{"here" if m is me else ""}" href="?as={name}&in={place}">{name}'
            + (' <small>Manage Server</small>' if m.roles else "") + "</a>"
            for name, m in self.cast.members.items()
        )
        places = (
            f'<a class="{"here" if place == "general" else ""}" href="?as={me.name}&in=general"># general</a>'
            f'<a class="{"here" if place == DM else ""}" href="?as={me.name}&in={DM}">@ doppel (direct messages)</a>'
        )
        page = Template(_asset("page.html")).substitute(
            me=html.escape(me.name),
            place=place,
            title="# general" if place == "general" else "@ doppel",
            server=html.escape(self.cast.guild.name),
            members=members,
            places=places,
            base_note=self.base_note,
        )
        return web.Response(text=page, content_type="text/html")

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(text=_asset(name), content_type=STATIC[name])

    async def commands(self, request: web.Request) -> web.Response:
        """The datalist the chat box suggests from, and the list of commands with their options."""
        commands = await self._registered()
        suggestions = "".join(f'<option value="/{c.name} ">{html.escape(c.description)}</option>' for c in commands)
        listing = "".join(
            f"<li><code>{html.escape(c.usage())}</code> {html.escape(c.description)}</li>" for c in commands
        )
        return web.json_response({"datalist": suggestions, "listing": listing})

    async def events(self, request: web.Request) -> web.StreamResponse:
        viewer = Viewer(self.cast.member(request.query.get("as", "")), request.query.get("in", "general"))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            async for event, data in self.feed.follow(viewer):
                await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        except ConnectionResetError:
            pass  # the page was closed or reloaded
        return response

    # --- what a visitor does -------------------------------------------------------------------

    async def send(self, request: web.Request) -> web.Response:
        form = await request.post()
        me = self.cast.member(str(form.get("as", "")))
        text = str(form.get("text", "")).strip()
        files: list[FileSpec] = [
            (item.filename, item.file.read(), item.content_type)
            for item in form.getall("files", [])
            if isinstance(item, web.FileField) and item.filename
        ]
        channel = await self._channel(me, str(form.get("in", "")))
        if text.startswith("/"):
            try:
                asked = parse(text, files, await self._registered(), self.cast.members, self.cast.guild.everyone)
                interaction = await self.fake.slash(me, channel, asked.name, asked.options, asked.attachments)
            except Unclear as unclear:
                return _answer(note=str(unclear))
            except CommandNotAvailable as refused:
                return _answer(note=self._unavailable(me, text, refused))
            except InvalidInteraction as invalid:
                return _answer(note=str(invalid))
            return await self._answered(interaction)
        if not text and not files:
            return _answer()
        if channel.guild is None:
            await self.fake.dm(me, text, files)
        else:
            await self.fake.say(me, channel, mentions(text, self.cast.members), files)
        return _answer()

    async def click(self, request: web.Request) -> web.Response:
        asked = await request.json()
        me = self.cast.member(str(asked.get("as", "")))
        message = await self.fake.read(lambda world: world.messages.get(int(asked["message"])))
        if message is None or message.deleted:
            return _answer(note="That message is gone.")
        try:
            interaction = await self.fake.click(me, message, str(asked["custom_id"]), asked.get("values"))
        except InvalidInteraction as invalid:
            return _answer(note=str(invalid))
        return await self._answered(interaction)

    async def modal(self, request: web.Request) -> web.Response:
        asked = await request.json()
        opened_by = self.modals.pop(int(asked["interaction"]), None)
        if opened_by is None:
            return _answer(note="That form was already sent or closed.")
        me = self.cast.member(str(asked.get("as", "")))
        try:
            interaction = await self.fake.submit_modal(me, opened_by, dict(asked.get("values") or {}))
        except InvalidInteraction as invalid:
            return _answer(note=str(invalid))
        return await self._answered(interaction)

    async def _answered(self, interaction: Interaction) -> web.Response:
        """Wait for the bot's acknowledgement; a modal it opens goes back to the page to be shown."""
        try:
            kind = await interaction.acknowledged(timeout=ACK_WAIT_S)
        except TimeoutError:
            return _answer(note="doppel did not answer in time (Discord would show: The application did not respond).")
        if kind == MODAL and interaction.modal is not None:
            self.modals[interaction.id] = interaction
            return _answer(modal=modal_html(interaction.modal, interaction.id))
        return _answer()

    def _unavailable(self, me: Member, text: str, refused: CommandNotAvailable) -> str:
        command = text.split()[0]
        if "permissions" in str(refused):  # the only ones the bot asks for: Manage Server
            managers = ", ".join(name for name, member in self.cast.members.items() if member.roles) or "nobody"
            return f"Discord does not show {command} to {me.name}: it needs Manage Server. Act as {managers} to try it."
        return f"Discord does not offer {command} here: {str(refused).split(';')[0]}."

    async def _registered(self) -> list[Command]:
        guild_id = self.cast.guild.id
        return flatten(await self.fake.read(lambda w: [*w.commands.get(guild_id, []), *w.commands.get(None, [])]))

    async def _channel(self, me: Member, place: str):
        if place == DM:
            return await self.fake.dm_channel(me)
        return self.cast.general


@web.middleware
async def _own_page_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only this page: another site's form cannot act in the playground, and a name that resolves to its address
    (DNS rebinding) does not reach it either. An address itself (`--host`, opened from another machine) is no name
    to rebind."""
    origin = request.headers.get("Origin")
    if not _own_address(urlsplit(f"//{request.host}").hostname) or (
        request.method == "POST" and origin is not None and urlsplit(origin).netloc != request.host
    ):
        raise web.HTTPForbidden(text="The playground answers only its own page, on this machine.")
    return await handler(request)


def _own_address(hostname: str | None) -> bool:
    if hostname in LOCAL_NAMES:
        return True
    try:
        ipaddress.ip_address(hostname or "")
    except ValueError:
        return False
    return True


def _answer(note: str | None = None, modal: str | None = None) -> web.Response:
    body: dict[str, Any] = {"note": note_html(note) if note else None, "modal": modal}
    return web.json_response(body)


@functools.cache  # the package's files do not change while it runs: read each once, not per request on the loop
def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("static", name).read_text(encoding="utf-8")
