"""Consent at every door: whether a picture job may still use the adapters it names.

A picture request names each person's adapter by its identity (the file's SHA-256). It may use
them while, for each person, the requester may use their adapter (their own, or shared with them
or with everyone) and that person's adapter now is the very one the request names: an adapter
deleted by /forget and trained anew is another adapter, which no old request or button reaches.

It is checked when a request is made (bot.exts.imagine.asking), when the runner starts the job
and again before it keeps the pictures (the runner's `consent` hook is `Consent.refusal`), and
right before the pictures are shown. /unshare and /forget stop the jobs it would refuse at once.

A style (bot.styles) is the server's, not a person's: any member of its server may draw with it, no member of
another server ever. A request may use it while the style still exists in the job's own server and its adapter
now is the one the request names (a style retrained or deleted stops old requests and buttons).

A member's reference photos (bot.members.references) are held to the same consent as their adapter: another
member's photos are used only while they share, and only photos still theirs and still fit to be references
(a photo removed, left out by the checks, or gone with /forget is none).
"""

from __future__ import annotations

import asyncio

from bot.jobs.models import Job
from bot.members import references
from bot.members.adapters import AdapterService
from bot.members.owner import Owner, adapter_name
from bot.members.store import Adapter, MemberStore
from bot.styles.store import Style, StyleStore
from contract import JobKind


def stopped_sharing(owner: Owner) -> str:
    """Why a picture was stopped by an /unshare, for the requester whose picture it was."""
    return f"<@{owner.member_id}> stopped sharing their adapter with you"


class Consent:
    def __init__(self, members: MemberStore, adapters: AdapterService, styles: StyleStore):
        self.members, self.adapters, self.styles = members, adapters, styles

    async def refusal(self, job: Job) -> str | None:
        """None when the picture job may use every adapter it names now; otherwise why not, for its requester."""
        if job.kind is not JobKind.GENERATE:
            return None
        request = job.picture_request
        uses = request.people
        people = [Owner(job.owner.guild_id, member_id) for member_id in job.notes.people]
        styles = [Owner(job.owner.guild_id, member_id) for member_id in job.notes.styles]
        if len(styles) != len(request.styles) or any(adapter_name(s) != u.name
                                                     for s, u in zip(styles, request.styles, strict=False)):
            return "this request does not say which styles it uses; ask again"
        # The adapters' people first, in order; then anyone drawn from their photos alone.
        with_adapter, from_photos = people[:len(uses)], people[len(uses):]
        if len(with_adapter) != len(uses) or any(adapter_name(p) != u.name
                                                 for p, u in zip(with_adapter, uses, strict=True)):
            return "this request does not say whose adapters it uses; ask again"
        named = {adapter_name(p) for p in people}
        if any(r.name not in named for r in request.references) or any(
                not request.references_of(adapter_name(p)) for p in from_photos):
            return "this request does not say whose photos it uses; ask again"
        for person, use in zip(with_adapter, uses, strict=True):
            refusal = await self.refusal_for(job.owner, person, use.identity)
            if refusal is not None:
                return refusal
        for style, use in zip(styles, request.styles, strict=True):
            refusal = await self.style_refusal(style, use.identity)
            if refusal is not None:
                return refusal
        for person in people:
            identities = [r.identity for r in request.references_of(adapter_name(person))]
            if identities and (refusal := await self.photos_refusal(job.owner, person, identities)) is not None:
                return refusal
        return None

    async def photos_refusal(self, requester: Owner, person: Owner, identities: list[str]) -> str | None:
        """Whether `requester` may draw `person` from these photos (by identity) now (None), or why not."""
        if not await self.members.may_use(requester, person):
            return f"<@{person.member_id}> has not shared their likeness with you"
        fit = {p.sha256 for p in await asyncio.to_thread(references.usable, await self.members.photos(person))}
        if not set(identities) <= fit:
            return f"<@{person.member_id}>'s photos have changed since this was asked for; ask again"
        return None

    async def usable(self, requester: Owner, person: Owner) -> Adapter | str:
        """`person`'s adapter as it is now, its identity known, if `requester` may draw with it; else why not."""
        if not await self.members.may_use(requester, person):
            return f"<@{person.member_id}> has not shared their adapter with you"
        adapter = await self.adapters.current(person)
        if adapter is None or adapter.identity is None:
            return f"<@{person.member_id}> has no adapter now"
        return adapter

    async def refusal_for(self, requester: Owner, person: Owner, identity: str) -> str | None:
        """Whether `requester` may draw with `person`'s adapter `identity` now (None), or why not."""
        adapter = await self.usable(requester, person)
        if isinstance(adapter, str):
            return adapter
        if adapter.identity != identity:
            return f"<@{person.member_id}>'s adapter has changed since this was asked for; ask again"
        return None

    async def style_usable(self, style: Style) -> Adapter | str:
        """The style's adapter as it is now, its identity known; else why it cannot be drawn with."""
        adapter = await self.adapters.current(style.owner)
        if adapter is None or adapter.identity is None:
            return f"the style '{style.name}' has no adapter yet: /style train makes one"
        return adapter

    async def style_refusal(self, owner: Owner, identity: str) -> str | None:
        """Whether a picture in the server of `owner` (a style's rows, in the job's server) may use the style's
        adapter `identity` now (None), or why not. Another server's style is none of this server's."""
        style = await self.styles.of_owner(owner)
        if style is None:
            return "a style this was asked with no longer exists; ask again"
        adapter = await self.style_usable(style)
        if isinstance(adapter, str):
            return adapter
        if adapter.identity != identity:
            return f"the style '{style.name}' has changed since this was asked for; ask again"
        return None
