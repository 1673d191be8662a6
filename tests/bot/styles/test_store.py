"""A server's styles: named per server, kept under ids no member has, erased as a member's rows are."""

from __future__ import annotations

import pytest

from bot.db import Database
from bot.members.owner import Owner
from bot.members.store import MemberStore
from bot.styles.store import StyleStore, is_style_owner, name_problem

GUILD, OTHER = 10, 20
ANN = Owner(GUILD, 1)


@pytest.fixture
async def stores(tmp_path):
    db = await Database.open(tmp_path / "doppel.sqlite3")
    yield StyleStore(db), MemberStore(db, tmp_path / "data")
    await db.close()


async def test_a_style_is_named_in_its_server_only_and_its_token_is_no_persons(stores):
    styles, members = stores
    await members.add_member(ANN, "ANNA11")
    brand = await styles.create(GUILD, "brand", created_by=ANN.member_id, token="BRND42")
    assert is_style_owner(brand.owner) and brand.owner.guild_id == GUILD
    assert await styles.named(GUILD, "brand") == brand
    assert await styles.named(OTHER, "brand") is None
    assert await styles.of_owner(brand.owner) == brand
    assert await styles.of_owner(ANN) is None
    assert await members.tokens_in(GUILD) == {"ANNA11": ANN}  # prompts never name a style as a person
    assert "BRND42" in await members.all_tokens()  # but no member may get its token
    second = await styles.create(GUILD, "retro", created_by=ANN.member_id, token="RTRO77")
    assert second.owner.member_id < brand.owner.member_id
    assert [s.name for s in await styles.in_guild(GUILD)] == ["brand", "retro"]


async def test_a_taken_or_bad_name_is_refused_and_changes_nothing(stores):
    styles, _ = stores
    await styles.create(GUILD, "brand", created_by=1, token="BRND42")
    with pytest.raises(ValueError, match="already has a style called 'brand'"):
        await styles.create(GUILD, "brand", created_by=2, token="BRND43")
    with pytest.raises(ValueError, match="lower-case"):
        await styles.create(GUILD, "Brand Book", created_by=2, token="BRND44")
    assert [s.token for s in await styles.in_guild(GUILD)] == ["BRND42"]
    assert name_problem("brand-2026") is None
    assert (await styles.create(OTHER, "brand", created_by=3, token="BRND45")).owner.guild_id == OTHER


async def test_erasing_a_member_leaves_the_style_they_started_and_erasing_a_style_leaves_the_members(stores):
    styles, members = stores
    await members.add_member(ANN, "ANNA11")
    brand = await styles.create(GUILD, "brand", created_by=ANN.member_id, token="BRND42")
    await members.erase(ANN)
    assert await styles.named(GUILD, "brand") == brand
    await members.add_member(ANN, "ANNA11")
    await members.erase(brand.owner)
    assert await styles.named(GUILD, "brand") is None
    assert await members.token(ANN) == "ANNA11"
