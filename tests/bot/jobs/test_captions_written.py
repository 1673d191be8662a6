"""Captions a training's worker wrote reach the run's copy of the photos and the member's records."""

from __future__ import annotations

from bot.db import Database
from bot.jobs.sink import ArtifactSink
from bot.members.owner import Owner
from bot.members.store import MemberStore
from contract import CaptionsWritten
from tests.conftest import TOKEN

ANN = Owner(1, 100)


async def test_the_runs_copy_gets_the_captions_it_lacks(tmp_path):
    """So a resumed attempt reads the same captions and does not write others."""
    (tmp_path / "001.jpg").write_bytes(b"jpeg")
    (tmp_path / "001.txt").write_text("")
    (tmp_path / "002.txt").write_text("me at the lake")
    await ArtifactSink(tmp_path / "jobs").captions(
        str(tmp_path), CaptionsWritten({"001.jpg": f"photo of {TOKEN}, on a bench", "002.jpg": "x", "003.jpg": "y"})
    )
    assert (tmp_path / "001.txt").read_text() == f"photo of {TOKEN}, on a bench"
    assert (tmp_path / "002.txt").read_text() == "me at the lake"
    assert (tmp_path / "003.txt").read_text() == "y"


async def test_written_captions_fill_only_photos_without_one_and_stay_editable(tmp_path):
    db = await Database.open(tmp_path / "db.sqlite3")
    members = MemberStore(db, tmp_path)
    try:
        await members.add_member(ANN, TOKEN)
        for number, caption in enumerate(("", "me at the lake", "  "), start=1):
            await members.add_photo(
                ANN, sha256=f"{number:064x}", phash=number, path=tmp_path / f"{number}.jpg", caption=caption,
                shown_name=f"{number}.jpg", width=512, height=512, max_photos=10,
            )
        filled = await members.fill_captions(ANN, {1: f"photo of {TOKEN}, on a bench", 2: "x", 3: f"photo of {TOKEN}"})
        assert filled == [1, 3]
        assert [p.caption for p in await members.photos(ANN)] == [
            f"photo of {TOKEN}, on a bench", "me at the lake", f"photo of {TOKEN}",
        ]
        await members.set_caption(ANN, 1, "me on a bench")  # what /dataset caption does
        assert await members.fill_captions(ANN, {1: f"photo of {TOKEN}, on a bench"}) == []
        assert (await members.photo(ANN, 1)).caption == "me on a bench"
    finally:
        await db.close()
