"""The stand-in's CDN: attachment downloads by the URL carried in message and interaction payloads.

Files are served with the content type that was declared when they were hosted, true or not, so a
test can hand the bot a "photo.jpg" that is not a JPEG and see what the bot makes of it.
"""

from __future__ import annotations

from aiohttp import web

from .model import World


class CDN:
    def __init__(self, world: World) -> None:
        self.world = world

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/attachments/{channel_id}/{attachment_id}/{filename}", self.attachment)]

    async def attachment(self, request: web.Request) -> web.Response:
        attachment = self.world.attachments.get(int(request.match_info["attachment_id"]))
        if attachment is None or attachment.filename != request.match_info["filename"]:
            # Discord's CDN answers a plain-text 404; a test that expected it declares it.
            return web.Response(status=404, text="This content is no longer available.")
        headers = {"Content-Type": attachment.content_type or "application/octet-stream"}
        return web.Response(body=attachment.data, headers=headers)
