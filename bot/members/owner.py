"""Who a member is to doppel: a person in one server. Their photos, token and adapter belong to this pair."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Owner:
    guild_id: int
    member_id: int


def adapter_name(owner: Owner) -> str:
    """What generators call a member's adapter (the cache key; the adapter's identity says which version)."""
    return f"{owner.guild_id}-{owner.member_id}"


def member_dir(data_dir: Path, owner: Owner) -> Path:
    return data_dir / "members" / str(owner.guild_id) / str(owner.member_id)
