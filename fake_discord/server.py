"""The stand-in's thread, event loop and aiohttp server, and the bridge the test API crosses.

Why a thread of its own: if the stand-in shared the bot's loop, a bot that blocks its loop would
also stop the stand-in's clock and queue, so a late acknowledgement would look punctual.

The middleware here is where every request passes: it parses the body once (JSON or multipart),
validates it against the OpenAPI description, turns `DiscordError` into Discord's error shape,
and records every response of status 400 or more. Nothing here ever answers 5xx: discord.py
retries those with sleeps of 1 + 2n s, and a test would hang instead of failing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import logging
import socket
import threading
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.web_urldispatcher import MatchInfoError

from .errors import DiscordError, ErrorLog, RecordedError
from .model import UploadedFile
from .openapi import API_PREFIX, OpenAPI

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024 * 1024  # above any upload limit, so the 413 comes from Discord's rule, not aiohttp


# Per-request values the middleware computes for the handlers.
RECEIVED_AT = web.RequestKey("received_at", float)  # on the stand-in's clock
# The JSON body, or a multipart body's payload_json; None when absent.
BODY: web.RequestKey[Any] = web.RequestKey("body", object)
FILES: web.RequestKey[list[UploadedFile]] = web.RequestKey("files", list)


def json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly `application/json`: discord.py parses a body as JSON only on that exact header, and
    # aiohttp's json_response would add "; charset=utf-8".
    return web.Response(body=json.dumps(data).encode(), status=status, headers={"Content-Type": "application/json"})


class Bridge:
    """Runs callables on the stand-in's loop from any thread, and awaits them from any loop."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def _submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        assert self.loop is not None, "the stand-in is not running"

        async def run() -> Any:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop)

    def on_own_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.on_own_loop():
            result = fn(*args)
            return await result if inspect.isawaitable(result) else result
        return await asyncio.wrap_future(self._submit(fn, *args))

    def call_sync(self, fn: Callable[..., Any], *args: Any, timeout: float = 10) -> Any:
        """Blocking: for the quick, synchronous world-building calls made before a bot connects."""
        if self.on_own_loop():
            return fn(*args)
        return self._submit(fn, *args).result(timeout)


class ServerThread:
    """An aiohttp application served on 127.0.0.1 (a free port) by a daemon thread."""

    def __init__(self, bridge: Bridge, errors: ErrorLog, spec: OpenAPI, now: Callable[[], float]) -> None:
        self.bridge = bridge
        self.now = now  # the stand-in's clock: deadlines count from a request's arrival, not its parsing
        self.after_record: Callable[[], None] = lambda: None  # wakes waits on errors
        self.errors = errors
        self.spec = spec
        self.app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[self._middleware])
        self.port = 0
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-discord", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._startup_error is not None:
            raise RuntimeError("fake-discord failed to start") from self._startup_error
        if not self._started.is_set():
            raise RuntimeError("fake-discord did not start within 10 s")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.bridge.loop = loop
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to start(), which raises it in the test
            self._startup_error = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        if self._thread is None or self.bridge.loop is None:
            return
        loop = self.bridge.loop
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = None

    # --- the middleware ---------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        request[RECEIVED_AT] = self.now()
        if isinstance(request.match_info, MatchInfoError):
            # A route the stand-in does not implement: never expectable, the stand-in must grow.
            status = request.match_info.http_exception.status
            message = f"{status}: {request.match_info.http_exception.reason}"
            self._record(request, status, 0, message, detail="route not implemented by fake-discord", internal=True)
            return json_response({"message": message, "code": 0}, status)
        try:
            if request.path.startswith(API_PREFIX):
                await self._read_body(request)
                self._validate(request)
            response = await handler(request)
        except DiscordError as error:
            self._record(request, error.status, error.code, error.message, detail=error.detail or error.errors)
            return json_response(error.body(), error.status)
        except Exception as exc:  # a bug in the stand-in: fail the test, do not hang the bot in retries
            log.exception("fake-discord handler failed for %s %s", request.method, request.path)
            detail = "".join(traceback.format_exception(exc)).strip()
            self._record(request, 400, 0, f"fake-discord internal error: {exc!r}", detail=detail, internal=True)
            return json_response({"message": f"fake-discord internal error: {exc!r}", "code": 0}, 400)
        if response.status >= 400:
            self._record(request, response.status, None, response.reason or "")
        return response

    def _record(
        self,
        request: web.Request,
        status: int,
        code: int | None,
        message: str,
        *,
        detail: Any = None,
        internal: bool = False,
    ) -> None:
        self.errors.record(RecordedError(request.method, request.path_qs, status, code, message, detail, internal))
        self.after_record()

    async def _read_body(self, request: web.Request) -> None:
        """Parse the body once into request[BODY] and request[FILES]."""
        files: list[UploadedFile] = []
        body: Any = None
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if not isinstance(part, BodyPartReader):  # a nested multipart: Discord takes none
                    raise DiscordError(400, 50035, "Invalid Form Body")
                name = part.name or ""
                if name == "payload_json":
                    body = _parse_json(await part.text())
                elif name.startswith("files[") and name.endswith("]"):
                    data = await part.read()
                    content_type = part.headers.get("Content-Type")
                    files.append(UploadedFile(int(name[6:-1]), part.filename or "unknown", content_type, bytes(data)))
                else:
                    raise DiscordError(
                        400,
                        50035,
                        "Invalid Form Body",
                        {name: {"_errors": [{"code": "UNKNOWN_FIELD", "message": "Unknown multipart field."}]}},
                    )
        elif request.can_read_body:
            text = await request.text()
            if text:
                if request.content_type != "application/json":
                    raise DiscordError(400, 50035, f"Unsupported Content-Type {request.content_type!r}")
                body = _parse_json(text)
        request[BODY] = body
        request[FILES] = files

    def _validate(self, request: web.Request) -> None:
        resource = request.match_info.route.resource
        assert resource is not None
        template = resource.canonical[len(API_PREFIX) :]
        self.spec.validate(request.method, template, request[BODY])


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DiscordError(400, 50109, "The request body contains invalid JSON.") from exc
