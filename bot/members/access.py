"""Who may train and who may draw: the roles the operator named (TRAIN_ROLES, DRAW_ROLES) and the admins' blocks;
and who may create, train and delete the server's styles (STYLE_ROLES, else the Manage Server permission).

Asked where the work is asked for (/train, every picture request) and again as the runner starts it (the
runner's `access` hook is `Access.refusal`): a member blocked, or whose role was taken away, while the job
waited is refused then, and the job fails with why. `allowed` is the rule, pure; the member's roles come
from Discord (`RolesOf`), and the blocks from the database, where they last until an admin lifts them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence

from bot.db import Database
from bot.jobs.models import Job
from bot.members.owner import Owner
from bot.styles.store import is_style_owner
from contract import JobKind

Role = tuple[int, str]  # a role's id and name
RolesOf = Callable[[Owner], Awaitable[Collection[Role] | None]]  # None: not a member of the server (any more)
ManagesOf = Callable[[Owner], Awaitable[bool]]  # whether they hold Manage Server (False: not in the server)

log = logging.getLogger(__name__)


class RolesUnknown(Exception):
    """Discord could not say a member's roles just now (not that they have none)."""

BLOCKED = "an admin of this server has blocked you from training and pictures here"
WHAT = {JobKind.TRAIN: "train", JobKind.GENERATE: "ask for pictures"}


def allowed(roles: Collection[Role] | None, named: Sequence[str]) -> bool:
    """Whether a member with `roles` holds one of the roles `named` (names or ids); an empty list names everyone."""
    if not named:
        return True
    if roles is None:
        return False
    return any(str(role_id) in named or name in named for role_id, name in roles)


def role_refusal(kind: JobKind, named: Sequence[str]) -> str:
    roles = ", ".join(f"`{name}`" for name in named)
    return f"only members with the role {roles} may {WHAT[kind]} here" if len(named) == 1 else (
        f"only members with one of the roles {roles} may {WHAT[kind]} here")


def style_role_refusal(named: Sequence[str]) -> str:
    if not named:
        return "only members with the Manage Server permission may create, train or delete this server's styles"
    roles = ", ".join(f"`{name}`" for name in named)
    return (f"only members with the role {roles} may create, train or delete this server's styles" if len(named) == 1
            else f"only members with one of the roles {roles} may create, train or delete this server's styles")


class Access:
    def __init__(self, db: Database, roles_of: RolesOf, train_roles: Sequence[str], draw_roles: Sequence[str],
                 style_roles: Sequence[str] = (), manages_of: ManagesOf | None = None):
        self.db, self.roles_of, self.manages_of = db, roles_of, manages_of
        self.named = {JobKind.TRAIN: list(train_roles), JobKind.GENERATE: list(draw_roles)}
        self.style_roles = list(style_roles)

    async def refusal_for(self, owner: Owner, kind: JobKind, roles: Collection[Role] | None = None) -> str | None:
        """None when `owner` may ask for work of `kind` now; else why not. `roles`: theirs, when the asker knows
        them (an interaction carries them); otherwise Discord is asked, and only when roles are named."""
        if await self.blocked(owner):
            return BLOCKED
        named = self.named[kind]
        if named and not allowed(roles if roles is not None else await self.roles_of(owner), named):
            return role_refusal(kind, named)
        return None

    async def style_refusal(self, asker: Owner, roles: Collection[Role] | None = None,
                            manages: bool | None = None) -> str | None:
        """None when `asker` may create, train and delete the server's styles now; else why not. `roles` and
        `manages` (Manage Server): theirs, when an interaction carries them; otherwise Discord is asked."""
        if await self.blocked(asker):
            return BLOCKED
        if self.style_roles:
            found = roles if roles is not None else await self.roles_of(asker)
            return None if allowed(found, self.style_roles) else style_role_refusal(self.style_roles)
        if manages is None:
            manages = self.manages_of is not None and await self.manages_of(asker)
        return None if manages else style_role_refusal([])

    async def refusal(self, job: Job) -> str | None:
        """The runner's check as a job starts. Should Discord not answer, the job goes ahead: its roles were
        checked when it was asked for, and an outage must not fail every job waiting. A style's training is
        checked against the member who asked for it (its notes' `requested_by`): a style has no roles."""
        try:
            if is_style_owner(job.owner):
                asker = job.notes.requested_by
                if asker is None:  # only /style train queues a style's training, and it says who asked
                    return "this style's training does not say who asked for it"
                return await self.style_refusal(Owner(job.owner.guild_id, asker))
            return await self.refusal_for(job.owner, job.kind)
        except RolesUnknown as unknown:
            log.warning("job %s starts with its owner's roles unchecked: %s", job.id, unknown)
            return None

    async def blocked(self, owner: Owner) -> bool:
        row = await self.db.fetchone("SELECT 1 FROM blocked_members WHERE guild_id = ? AND member_id = ?",
                                     (owner.guild_id, owner.member_id))
        return row is not None

    async def block(self, owner: Owner, by: int) -> bool:
        """False when they were blocked already."""
        cursor = await self.db.execute(
            "INSERT OR IGNORE INTO blocked_members (guild_id, member_id, blocked_by, blocked_at) VALUES (?, ?, ?, ?)",
            (owner.guild_id, owner.member_id, by, time.time()),
        )
        return cursor.rowcount > 0

    async def unblock(self, owner: Owner) -> bool:
        """False when they were not blocked."""
        cursor = await self.db.execute("DELETE FROM blocked_members WHERE guild_id = ? AND member_id = ?",
                                       (owner.guild_id, owner.member_id))
        return cursor.rowcount > 0
