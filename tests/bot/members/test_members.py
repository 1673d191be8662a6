import pytest

from bot.db import Database
from bot.jobs.models import JobNotes
from bot.jobs.store import JobStore
from bot.members.owner import Owner
from bot.members.prompts import PromptRefused, resolve_prompt
from bot.members.store import EVERYONE, MemberStore, PhotoLimit
from bot.members.tokens import TokenChecker, new_token, random_token
from contract import JobKind, TrainRequest

ANN, BOB, CY = Owner(1, 100), Owner(1, 200), Owner(1, 300)


@pytest.fixture
async def members(tmp_path):
    db = await Database.open(tmp_path / "db.sqlite3")
    store = MemberStore(db, tmp_path)
    yield store
    await db.close()


async def with_adapter(members, owner, token):
    await members.add_member(owner, token)
    await members.set_adapter(owner, f"/adapters/{token}.safetensors", None, 1000, identity=token)


def test_tokens_look_like_thgh96():
    token = random_token()
    assert len(token) == 6 and token[:4].isalpha() and token[:4].isupper() and token[4:].isdigit()
    assert not set(token[:4]) & set("AEIOUY")  # no vowels: no English word


def test_tokens_are_checked_against_the_base_models_tokenizers(tiny_dir, model_cache):
    checker = TokenChecker.for_base("tiny", model_cache)
    assert len(checker.tokenizers) == 2
    assert not checker.acceptable("photo", [])  # one existing CLIP token: it already means something
    assert checker.acceptable("THGH96", [])
    assert not checker.acceptable("THGH96", ["THGH96"])
    token = new_token(["THGH96"], checker)
    assert token != "THGH96" and checker.acceptable(token, ["THGH96"])


async def test_the_prompt_rule(members):
    await with_adapter(members, ANN, "THGH96")
    await with_adapter(members, BOB, "KRZT42")
    await members.add_member(CY, "PLMN07")  # no adapter

    plain = await resolve_prompt("as a knight", ANN, members)
    assert (plain.text, plain.owners) == ("THGH96, as a knight", (ANN,))
    own = await resolve_prompt("THGH96 riding a horse", ANN, members)
    assert (own.text, own.owners) == ("THGH96 riding a horse", (ANN,))

    with pytest.raises(PromptRefused, match="not shared"):
        await resolve_prompt("<@200> as a knight", ANN, members)
    with pytest.raises(PromptRefused, match="not shared"):
        await resolve_prompt("KRZT42 as a knight", ANN, members)
    await members.share(BOB, ANN.member_id)
    both = await resolve_prompt("<@200> and THGH96 at the beach", ANN, members)
    assert (both.text, both.owners) == ("KRZT42 and THGH96 at the beach", (BOB, ANN))
    weighted = await resolve_prompt("<@200>:0.6 and THGH96:1.2 at the beach, 16:9", ANN, members)
    assert weighted.text == "KRZT42 and THGH96 at the beach, 16:9"
    assert weighted.weights == {BOB: 0.6, ANN: 1.2}
    with pytest.raises(PromptRefused, match="from 0 to 1.5"):
        await resolve_prompt("KRZT42:3 at the beach", ANN, members)

    with pytest.raises(PromptRefused, match="has no adapter"):
        await resolve_prompt("<@999> dancing", ANN, members)
    await members.share(CY, EVERYONE)
    with pytest.raises(PromptRefused, match="not trained an adapter yet, and this picture model cannot draw someone "
                       "from their photos alone"):
        await resolve_prompt("PLMN07 dancing", ANN, members)  # FLUX.1: no reference photos
    assert (await resolve_prompt("PLMN07 dancing", ANN, members, from_photos=True)).owners == (CY,)
    assert (await resolve_prompt("a cat", CY, members)).plain  # no adapter of their own: the plain model
    assert (await resolve_prompt("a cat", CY, members, from_photos=True)).plain  # nor photos to draw them from


async def test_sharing_is_per_member_or_everyone_and_revocable(members):
    await with_adapter(members, ANN, "THGH96")
    assert not await members.may_use(BOB, ANN)
    await members.share(ANN, EVERYONE)
    assert await members.may_use(BOB, ANN) and await members.may_use(CY, ANN)
    assert not await members.may_use(Owner(2, 200), ANN)  # another server
    assert await members.unshare(ANN, EVERYONE)
    assert not await members.may_use(BOB, ANN)


async def test_photos_are_numbered_capped_and_forgotten_with_everything_else(members, tmp_path):
    await members.add_member(ANN, "THGH96")
    for k in range(3):
        await members.add_photo(ANN, sha256=f"{k:064x}", phash=2**64 - 1 - k, path=tmp_path / f"{k}.jpg",
                                caption=f"c{k}", shown_name=f"{k}.jpg", width=64, height=64, max_photos=3)
    with pytest.raises(PhotoLimit):
        await members.add_photo(ANN, sha256="f" * 64, phash=1, path=tmp_path / "x.jpg", caption="",
                                shown_name="x.jpg", width=64, height=64, max_photos=3)
    assert [p.number for p in await members.photos(ANN)] == [1, 2, 3]
    assert (await members.photos(ANN))[0].phash == 2**64 - 1  # a 64-bit hash survives SQLite's signed integers
    await members.remove_photo(ANN, 1)
    assert [p.caption for p in await members.photos(ANN)] == ["c1", "c2"]

    await members.set_adapter(ANN, tmp_path / "a.safetensors", None, 10, identity="a")
    await members.share(ANN, BOB.member_id)
    await with_adapter(members, BOB, "KRZT42")
    await members.share(BOB, ANN.member_id)
    jobs = JobStore(members.db)
    await jobs.submit(JobKind.TRAIN, ANN, TrainRequest(base="tiny", token="ABCD12"), JobNotes(), max_active=5)
    counts = await members.forget(ANN)
    assert counts == {"photos": 2, "adapters": 1, "shares": 2, "jobs": 1, "token": 1}
    for table, column in (("photos", "member_id"), ("adapters", "member_id"), ("jobs", "member_id"),
                          ("members", "member_id"), ("shares", "owner_id"), ("shares", "grantee_id")):
        assert await members.db.fetchone(f"SELECT 1 FROM {table} WHERE {column} = ?", (ANN.member_id,)) is None
    assert await members.token(BOB) == "KRZT42"  # others are untouched
