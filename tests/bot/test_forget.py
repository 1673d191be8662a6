"""/forget and /admin purge end to end: nothing of the member is left, whatever is running, whoever made it,
and wherever they are now (through the local Discord stand-in, a real local Ray, the tiny model)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable

from bot.members.owner import Owner
from bot.settings import BotSettings
from contract import JobState
from fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)
from tests.bot.test_bot import actors, add_photos, rows_of, started, world  # noqa: F401  (fixtures)


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until `condition()` holds: state the bot's own tasks change (checked every 50 ms)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


def guilds_known(settings: BotSettings, member_id: int) -> list[int]:
    with sqlite3.connect(settings.database_file) as db:
        return [g for (g,) in db.execute("SELECT guild_id FROM members WHERE member_id = ? ORDER BY 1", (member_id,))]


async def forget(w, user, channel, **options) -> str:
    """/forget, then "Delete everything": the confirmation's text."""
    ask = await w.fake.slash(user, channel, "forget", options=options or None)
    question = await ask.original()
    assert question.ephemeral and "Sure?" in question.content, question.content
    confirm = next(c for c, label, _ in question.buttons() if label == "Delete everything")
    done = await (await w.fake.click(user, question, confirm)).wait_followup(lambda m: "Deleted" in m.content)
    return done.content


async def test_forget_during_the_last_step_leaves_no_file(world):
    w = world
    async with started(w) as bot:
        ann = w.owner(w.ann)
        await add_photos(w, w.ann)
        # The last step's checkpoint arrives only once /forget is done: the training's results come in late.
        reached, resume = asyncio.Event(), asyncio.Event()
        write = bot.runner.sink.checkpoint

        async def late(job_id, event):
            if event.step == event.total:
                reached.set()
                await resume.wait()
            return await write(job_id, event)

        bot.runner.sink.checkpoint = late
        await w.fake.slash(w.ann, w.general, "train", options={"steps": 10})
        progress = await w.general.wait_for_message(lambda m: "Training the adapter" in m.content)
        await asyncio.wait_for(reached.wait(), 60)
        job_id = bot.runner.trainers[0].job_id
        assert job_id is not None and (w.settings.jobs_dir / f"{job_id:08d}").is_dir()

        done = await forget(w, w.ann, w.general)
        assert "1 jobs" in done and "4 photos" in done
        resume.set()
        await until(lambda: bot.runner.trainers[0].job_id is None)  # the runner has let go of the job

        assert not (w.settings.jobs_dir / f"{job_id:08d}").exists()
        assert not bot.members.folder(ann).exists()
        assert rows_of(w.settings, w.ann.id) == dict.fromkeys(rows_of(w.settings, w.ann.id), 0)
        assert progress.deleted
        assert not [m for m in w.general.messages if "adapter is ready" in m.content]


async def test_forget_deletes_the_pictures_others_made_and_the_messages_showing_the_member(world):
    w = world
    async with started(w) as bot:
        ann, bob = w.owner(w.ann), w.owner(w.bob)
        await add_photos(w, w.ann)
        await w.fake.slash(w.ann, w.general, "train", options={"steps": 10})
        progress = await w.general.wait_for_message(lambda m: "Training the adapter" in m.content)
        announcement = await w.general.wait_for_message(lambda m: "adapter is ready" in m.content, timeout=120)
        await bot.members.share(ann, w.bob.id)

        async def imagine(member, prompt: str):
            asked = await w.fake.slash(member, w.general, "imagine", options={"prompt": prompt, "seed": 1})
            return await w.fake.wait_for_edit(await asked.original(), lambda m: m.attachments, timeout=60)

        of_ann = await imagine(w.bob, f"<@{w.ann.id}> as a pirate")
        by_ann = await imagine(w.ann, "as a knight")
        a_cat = await imagine(w.bob, "a cat")  # bob's, and not of ann: it stays
        pirate, cat = [j.id for j in await bot.jobs.of_owner(bob, *JobState)]
        assert (w.settings.jobs_dir / f"{pirate:08d}").is_dir()
        # One more of ann, posted where the bot can no longer reach.
        await bot.members.record_shown(424242, 434343, pirate, w.guild.id, [w.ann.id])
        w.fake.expect_error(404, 10003)

        done = await forget(w, w.ann, w.general)
        assert "1 picture requests of others that drew you" in done, done
        assert "4 messages of mine that showed you" in done, done
        assert "could not delete 1 message" in done and "424242/434343" in done, done

        assert progress.deleted and announcement.deleted and of_ann.deleted and by_ann.deleted
        assert not a_cat.deleted
        assert [j.id for j in await bot.jobs.of_owner(bob, *JobState)] == [cat]
        assert not (w.settings.jobs_dir / f"{pirate:08d}").exists()
        assert (w.settings.jobs_dir / f"{cat:08d}").is_dir()
        assert rows_of(w.settings, w.ann.id) == dict.fromkeys(rows_of(w.settings, w.ann.id), 0)
        with sqlite3.connect(w.settings.database_file) as db:
            assert db.execute("SELECT COUNT(*) FROM shown_messages WHERE job_id != ?", (cat,)).fetchone() == (0,)
        assert not bot.members.folder(ann).exists()


async def test_people_who_left_are_forgotten_from_a_dm_or_by_an_admin(world):
    w = world
    elsewhere = w.fake.add_guild("Elsewhere")
    elsewhere.add_text_channel("lobby")
    carl, dan = elsewhere.add_member("carl"), elsewhere.add_member("dan")  # neither is in w.guild (now)
    async with started(w) as bot:

        async def known(owner: Owner) -> None:
            await bot.token_for(owner)
            photo = bot.members.folder(owner) / "photos" / "a.jpg"
            photo.parent.mkdir(parents=True)
            photo.write_bytes(b"a photo")
            await bot.members.add_photo(owner, sha256="a" * 64, phash=1, path=photo, caption="", shown_name="a.jpg",
                                        width=64, height=64, max_photos=10)

        here, there = Owner(w.guild.id, carl.id), Owner(elsewhere.id, carl.id)
        for owner in (here, there, Owner(w.guild.id, dan.id)):
            await known(owner)

        dm = await w.fake.dm_channel(carl)
        which = await w.fake.slash(carl.user, dm, "forget")
        text = (await which.original()).content
        assert "several servers" in text and str(w.guild.id) in text and "Elsewhere" in text

        done = await forget(w, carl.user, dm, server=str(w.guild.id))
        assert "1 photos" in done
        assert guilds_known(w.settings, carl.id) == [elsewhere.id]  # only the server chosen
        assert not bot.members.folder(here).exists() and bot.members.folder(there).exists()

        neither = await w.fake.slash(w.boss, w.general, "admin purge")
        assert "either a member or a user id" in (await neither.original()).content
        purge = await w.fake.slash(w.boss, w.general, "admin purge", options={"user_id": str(dan.id)})
        purged = await purge.wait_followup(lambda m: "Deleted for" in m.content)
        assert "1 photos" in purged.content
        assert guilds_known(w.settings, dan.id) == []
        assert not bot.members.folder(Owner(w.guild.id, dan.id)).exists()
