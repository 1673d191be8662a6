"""The gateway websocket: HELLO, IDENTIFY -> READY + GUILD_CREATE, heartbeats, RESUME, member chunks.

Frames are plain JSON text. discord.py asks for zlib-stream compression in the URL but decompresses
only binary frames, so text frames are accepted as they are.

Events respect the bot's intents the way Discord applies them, so a bot that forgot an intent
misses the event here too: guild messages need GUILD_MESSAGES, DMs need DIRECT_MESSAGES, member
joins need GUILD_MEMBERS, and without MESSAGE_CONTENT a guild message from someone else arrives
with empty content, embeds, attachments and components unless it mentions the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .model import Message, World

log = logging.getLogger(__name__)

# Opcodes.
DISPATCH, HEARTBEAT, IDENTIFY, RESUME, RECONNECT, REQUEST_GUILD_MEMBERS = 0, 1, 2, 6, 7, 8
INVALID_SESSION, HELLO, HEARTBEAT_ACK = 9, 10, 11

# Intents.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15

HEARTBEAT_INTERVAL_MS = 41250
# Discord's ACK comes after a network round trip. discord.py's heartbeat thread notes the time it sent only once
# the loop has sent the beat: an ACK from this machine that came before would read as a whole interval late
# ("Can't keep up, ... 41.3s behind", every heartbeat).
HEARTBEAT_ACK_DELAY_S = 0.2
REPLAY_BUFFER = 1000  # dispatches kept for a RESUME
AUTHENTICATION_FAILED = 4004


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    shard: list[int] | None
    ws: web.WebSocketResponse | None = None
    seq: int = 0
    sent: list[tuple[int, str]] = field(default_factory=list)  # (seq, frame) for replay on RESUME
    resumes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # keeps frames in order


class Gateway:
    def __init__(self, world: World, token: str, heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS) -> None:
        self.world = world
        self.token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.url = ""  # ws://127.0.0.1:PORT/gateway, set once the server listens
        self.sessions: dict[str, Session] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task] = set()
        world.on_entity_added = self._entity_added

    @property
    def connected(self) -> bool:
        return any(session.ws is not None for session in self.sessions.values())

    # --- the websocket --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: Session | None = None
        try:
            await self._send(
                ws, {"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None}
            )
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op, data = payload.get("op"), payload.get("d")
                if op == HEARTBEAT:
                    self._later(self._acknowledge(ws))
                elif op == IDENTIFY:
                    session = await self._identify(ws, data)
                elif op == RESUME:
                    session = await self._resume(ws, data)
                elif op == REQUEST_GUILD_MEMBERS and session is not None:
                    await self._members_chunk(session, data)
                # presence (3) and voice (4) updates need no answer
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            self.world.changed()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        if data.get("token") != self.token:
            await ws.close(code=AUTHENTICATION_FAILED, message=b"Authentication failed.")
            return None
        session = Session(secrets.token_hex(16), int(data.get("intents", 0)), data.get("shard"))
        self.sessions[session.id] = session
        session.ws = ws
        world = self.world
        ready: dict[str, Any] = {
            "v": 10,
            "user": {**world.bot.payload(), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(guild_id), "unavailable": True} for guild_id in world.guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": str(world.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "auth": {},
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        await self._dispatch_to(session, "READY", ready)
        for guild in list(world.guilds.values()):
            await self._dispatch_to(session, "GUILD_CREATE", guild.payload())
        world.changed()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> Session | None:
        session = self.sessions.get(data.get("session_id", ""))
        if session is None or data.get("token") != self.token:
            await self._send(ws, {"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return None
        async with session.lock:
            session.ws = ws
            last = int(data.get("seq") or 0)
            for seq, frame in session.sent:
                if seq > last:
                    await ws.send_str(frame)
        await self._dispatch_to(session, "RESUMED", {})
        session.resumes += 1
        self.world.changed()
        return session

    async def _members_chunk(self, session: Session, data: dict[str, Any]) -> None:
        guild_ids = data.get("guild_id")
        for guild_id in guild_ids if isinstance(guild_ids, list) else [guild_ids]:
            guild = self.world.guilds.get(int(guild_id or 0))
            if guild is None:
                continue
            wanted = [int(uid) for uid in data.get("user_ids") or []]
            query = (data.get("query") or "").lower()
            limit = int(data.get("limit") or 0) or len(guild.members)
            if wanted:
                members = [guild.members[uid] for uid in wanted if uid in guild.members]
            else:
                members = [m for m in guild.members.values() if m.name.lower().startswith(query)][:limit]
            chunk: dict[str, Any] = {
                "guild_id": str(guild.id),
                "members": [m.payload() for m in members],
                "chunk_index": 0,
                "chunk_count": 1,
                "not_found": [str(uid) for uid in wanted if uid not in guild.members],
            }
            if data.get("nonce") is not None:
                chunk["nonce"] = data["nonce"]
            if data.get("presences"):
                chunk["presences"] = []
            await self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # --- sending --------------------------------------------------------------------------------

    @staticmethod
    async def _send(ws: web.WebSocketResponse, payload: dict[str, Any]) -> None:
        await ws.send_str(json.dumps(payload))

    async def _dispatch_to(self, session: Session, event: str, data: dict[str, Any]) -> None:
        async with session.lock:
            session.seq += 1
            frame = json.dumps({"op": DISPATCH, "t": event, "s": session.seq, "d": data})
            session.sent.append((session.seq, frame))
            del session.sent[:-REPLAY_BUFFER]
            if session.ws is not None and not session.ws.closed:
                try:
                    await session.ws.send_str(frame)
                except ConnectionResetError:
                    session.ws = None  # kept in `sent`; a RESUME replays it

    async def dispatch(self, event: str, data: dict[str, Any], *, intent: int | None = None) -> int:
        """Send an event to every session that has the intent; returns how many received it."""
        count = 0
        for session in list(self.sessions.values()):
            if intent is not None and not session.intents & intent:
                continue
            await self._dispatch_to(session, event, data)
            count += 1
        return count

    async def dispatch_message(self, event: str, message: Message) -> None:
        """MESSAGE_CREATE / MESSAGE_UPDATE with Discord's intent rules (ephemeral messages are never dispatched)."""
        if message.ephemeral:
            return
        guild = message.channel.guild
        intent = DIRECT_MESSAGES if guild is None else GUILD_MESSAGES
        payload = message.payload(self.world, gateway=True)
        for session in list(self.sessions.values()):
            if not session.intents & intent:
                continue
            data = payload
            hidden = guild is not None and message.author.id != self.world.bot.id
            if hidden and not session.intents & MESSAGE_CONTENT and self.world.bot not in message.mentions(self.world):
                data = {**payload, "content": "", "embeds": [], "attachments": [], "components": []}
            await self._dispatch_to(session, event, data)

    async def dispatch_delete(self, message: Message) -> None:
        if message.ephemeral:
            return
        data: dict[str, Any] = {"id": str(message.id), "channel_id": str(message.channel.id)}
        guild = message.channel.guild
        if guild is not None:
            data["guild_id"] = str(guild.id)
        await self.dispatch("MESSAGE_DELETE", data, intent=DIRECT_MESSAGES if guild is None else GUILD_MESSAGES)

    async def reconnect(self) -> None:
        """Ask every connected session to reconnect (op 7); discord.py resumes at READY's resume_gateway_url."""
        for session in self.sessions.values():
            if session.ws is not None:
                await self._send(session.ws, {"op": RECONNECT, "d": None, "s": None, "t": None})

    async def _acknowledge(self, ws: web.WebSocketResponse) -> None:
        await asyncio.sleep(HEARTBEAT_ACK_DELAY_S)
        if not ws.closed:
            with contextlib.suppress(ConnectionResetError):
                await self._send(ws, {"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})

    def _entity_added(self, event: str, data: dict[str, Any]) -> None:
        intent = GUILD_MEMBERS if event in ("GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE") else GUILDS
        self._later(self.dispatch(event, data, intent=intent))

    def _later(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"fake-discord shutting down")
