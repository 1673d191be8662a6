"""The Discord stand-in (fake_discord) driving a throwaway discord.py bot end to end.

The bot below is defined here on purpose: these tests check the stand-in, not doppel. Every
outcome the bot sees is put on its `outcomes` queue, so the tests wait on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time

import aiohttp
import discord
import pytest
from discord import app_commands
from discord.ext import commands

from fake_discord import Channel, CommandNotAvailable, FakeDiscord, Guild, InvalidInteraction, Member, running_bot

pytest_plugins = ["fake_discord.fixtures"]  # the fake_discord fixture

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60  # enough of a JPEG for a bot that only looks at the bytes


class VoteView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=30)

    @discord.ui.button(label="Yes", custom_id="vote:yes", style=discord.ButtonStyle.success)
    async def yes(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        button.disabled = True
        await interaction.response.edit_message(content=f"Voted yes by {interaction.user.name}", view=self)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text = discord.ui.TextInput(label="What do you think?", custom_id="feedback:text", max_length=200)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"thanks: {self.text.value}", ephemeral=True)


class ProbeBot(commands.Bot):
    """A bot with one command per behaviour under test; `sync_guild` picks global or per-guild sync."""

    def __init__(self, sync_guild: int | None = None, members_intent: bool = False) -> None:
        intents = discord.Intents.default()  # like doppel: no privileged intents
        intents.members = members_intent  # with it, discord.py chunks members at start-up (op 8)
        super().__init__(command_prefix=commands.when_mentioned, intents=intents, help_command=None)
        self.sync_guild = sync_guild
        self.outcomes: asyncio.Queue[tuple[str, object]] = asyncio.Queue()
        self.gate = asyncio.Event()  # commands that must wait for the test's go-ahead wait on this

    async def note(self, what: str, value: object) -> None:
        await self.outcomes.put((what, value))

    async def next_outcome(self, timeout: float = 5) -> tuple[str, object]:
        return await asyncio.wait_for(self.outcomes.get(), timeout)

    async def setup_hook(self) -> None:
        dataset = app_commands.Group(name="dataset", description="Your photos")
        photos = app_commands.Group(name="photos", description="Look at your photos", parent=dataset)

        @dataset.command(name="add", description="Add a photo")
        @app_commands.describe(caption="What is in it", photo="The photo")
        async def add(interaction: discord.Interaction, caption: str, photo: discord.Attachment) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            data = await photo.read()
            await interaction.followup.send(
                f"added {photo.filename} ({len(data)} bytes, {photo.content_type}): {caption}",
                file=discord.File(io.BytesIO(data[:8]), "thumb.jpg"),
                ephemeral=True,
            )

        @photos.command(name="count", description="Count your photos")
        async def count(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("counting…")
            await interaction.edit_original_response(content="3 photos")

        @app_commands.command(name="vote", description="Ask for a vote")
        async def vote(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Vote?", view=VoteView())

        @app_commands.command(name="feedback", description="Tell us")
        async def feedback(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(FeedbackModal())

        @app_commands.command(name="announce", description="Post in the channel and correct it")
        async def announce(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message("posting", ephemeral=True)
            message = await interaction.channel.send(text)
            await message.edit(content=f"{text} (edited)")

        @app_commands.command(name="wait", description="Defer once the test says go")
        async def wait(interaction: discord.Interaction) -> None:
            await self.gate.wait()
            try:
                await interaction.response.defer()
                await self.note("deferred", None)
            except discord.HTTPException as exc:
                await self.note("defer failed", exc)

        @app_commands.command(name="later", description="Defer, then follow up once the test says go")
        async def later(interaction: discord.Interaction) -> None:
            await interaction.response.defer()
            await self.gate.wait()
            try:
                await interaction.followup.send("finally")
                await self.note("followed up", None)
            except discord.HTTPException as exc:
                await self.note("follow-up failed", exc)

        @app_commands.command(name="ack", description="Acknowledge (two copies of the bot race for it)")
        async def ack(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.defer()
                await self.note("ack", "ok")
            except discord.HTTPException as exc:
                await self.note("ack", exc)

        @app_commands.command(name="long", description="Answer with too much text")
        async def long(interaction: discord.Interaction) -> None:
            try:
                await interaction.response.send_message("x" * 2001)
            except discord.HTTPException as exc:
                await self.note("long failed", exc)

        @app_commands.command(name="bad-embed", description="Post an embed the schema forbids")
        async def bad_embed(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("trying", ephemeral=True)
            try:  # discord.py does not check embed title length; Discord (and its OpenAPI schema) do: 256
                await interaction.channel.send(
                    embed=discord.Embed(title="t" * 300), file=discord.File(io.BytesIO(b"x"), "x.txt")
                )
            except discord.HTTPException as exc:
                await self.note("embed failed", exc)

        @app_commands.command(name="block", description="Block the event loop for 3.2 s, then defer")
        async def block(interaction: discord.Interaction) -> None:
            time.sleep(3.2)  # synchronous work on the bot's loop: the mistake this command exists to show
            try:
                await interaction.response.defer()
                await self.note("deferred", None)
            except discord.HTTPException as exc:
                await self.note("defer failed", exc)

        @app_commands.command(name="misc", description="Use the other routes a bot touches")
        async def misc(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("with file", file=discord.File(io.BytesIO(b"\x89PNG"), "a.png"))
            original = await interaction.original_response()
            extra = await interaction.followup.send("extra", ephemeral=True, wait=True)
            extra = await extra.edit(content="extra edited")
            await extra.delete()
            posted = await interaction.channel.send("history")
            fetched = await interaction.channel.fetch_message(posted.id)
            history = [m.content async for m in interaction.channel.history(limit=5)]
            await posted.delete()
            await interaction.user.send("psst")  # opens the DM channel first
            guild = await self.fetch_guild(interaction.guild_id)
            member = await guild.fetch_member(interaction.user.id)
            channel = await self.fetch_channel(interaction.channel_id)
            await self.note(
                "misc",
                {
                    "original": (original.content, [a.filename for a in original.attachments]),
                    "extra": extra.content,
                    "fetched": fetched.content,
                    "history": history,
                    "guild": guild.name,
                    "member": member.name,
                    "channel": channel.name,
                },
            )

        @app_commands.command(name="purge", description="Managers only, servers only")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def purge(interaction: discord.Interaction) -> None:
            await interaction.response.send_message(f"manage_guild={interaction.permissions.manage_guild}")

        for command in (dataset, vote, feedback, announce, wait, later, ack, long, bad_embed, block, misc, purge):
            self.tree.add_command(command)
        if self.sync_guild is not None:
            guild = discord.Object(self.sync_guild)
            self.tree.copy_global_to(guild=guild)
            self.tree.clear_commands(guild=None)
            await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author == self.user:
            return
        if message.guild is None and message.attachments:
            attachment = message.attachments[0]
            data = await attachment.read()  # fetched from the stand-in's CDN by URL
            await message.channel.send(
                f"got {attachment.filename} ({attachment.content_type}): {len(data)} bytes, {data[:2].hex()}"
            )


# The world is built by fixtures, before the bot connects: its GUILD_CREATE carries all of it.


class SlowStartBot(commands.Bot):
    """A start-up that waits for what never comes and breaks when closed under it, as one whose database closes."""

    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(), help_command=None)
        self.closing = asyncio.Event()

    async def setup_hook(self) -> None:
        await self.open_the_records()

    async def open_the_records(self) -> None:
        await self.closing.wait()
        raise ValueError("no active connection")

    async def close(self) -> None:
        self.closing.set()
        await super().close()


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:
    return fake_discord


@pytest.fixture
def guild(fake: FakeDiscord) -> Guild:
    return fake.add_guild("Team")


@pytest.fixture
def ann(guild: Guild) -> Member:
    return guild.add_member("ann")


@pytest.fixture
def boss(guild: Guild) -> Member:
    return guild.add_member("boss", manage_guild=True)


@pytest.fixture
def general(guild: Guild) -> Channel:
    return guild.add_text_channel("general")


async def test_login_sync_and_command_shape(fake, guild, ann, boss, general):
    async with running_bot(fake, ProbeBot(sync_guild=guild.id)) as bot:
        assert bot.user.id == fake.bot_user.id
        assert [g.id for g in bot.guilds] == [guild.id]
        assert (
            bot.get_guild(guild.id).me.id == fake.bot_user.id
        )  # without the members intent, discord.py caches only itself
        assert fake.commands() == []  # per-guild sync: nothing global
        registered = {c["name"]: c for c in fake.commands(guild)}
        dataset = registered["dataset"]
        add = next(o for o in dataset["options"] if o["name"] == "add")
        group = next(o for o in dataset["options"] if o["name"] == "photos")
        assert add["type"] == 1 and group["type"] == 2
        assert [(o["name"], o["type"], o["required"]) for o in add["options"]] == [
            ("caption", 3, True),
            ("photo", 11, True),
        ]

        with pytest.raises(InvalidInteraction, match="no command /nope"):
            await fake.slash(ann, general, "nope")
        with pytest.raises(InvalidInteraction, match="has no option 'colour'"):
            await fake.slash(ann, general, "dataset add", {"caption": "me", "colour": "red"})
        with pytest.raises(InvalidInteraction, match="expected str"):
            await fake.slash(ann, general, "dataset add", {"caption": 5}, {"photo": ("a.jpg", JPEG, "image/jpeg")})
        with pytest.raises(InvalidInteraction, match="requires option 'photo'"):
            await fake.slash(ann, general, "dataset add", {"caption": "me"})
        with pytest.raises(InvalidInteraction, match="is a group"):
            await fake.slash(ann, general, "dataset photos")

        await fake.reconnect_gateway()  # discord.py resumes at READY's resume_gateway_url
        inter = await fake.slash(boss, general, "dataset photos count")
        assert await inter.acknowledged() == 4
        await fake.wait_for_edit(await inter.original(), lambda m: m.content == "3 photos")  # let the bot finish
    assert not fake.recorded_errors()


async def test_member_chunking_and_late_members(fake, guild, ann, boss):
    async with running_bot(fake, ProbeBot(members_intent=True)) as bot:
        cached = bot.get_guild(guild.id)
        assert cached.chunked and {"ann", "boss"} <= {m.name for m in cached.members}  # GUILD_MEMBERS_CHUNK
        assert cached.get_member(boss.id).guild_permissions.manage_guild
        joined = asyncio.ensure_future(bot.wait_for("member_join", timeout=5))
        guild.add_member("cy")  # after READY: arrives as GUILD_MEMBER_ADD
        assert (await joined).name == "cy"

        # A role given later arrives as GUILD_MEMBER_UPDATE (the members intent's), and shows in the REST API.
        painters = guild.add_role("Painters")
        updated = asyncio.ensure_future(bot.wait_for("member_update", timeout=5))
        guild.set_member_roles(ann, (painters,))
        before, after = await updated
        assert "Painters" in {r.name for r in after.roles} and "Painters" not in {r.name for r in before.roles}
        fetched = await cached.fetch_member(ann.id)
        assert [r.name for r in fetched.roles] == ["@everyone", "Painters"]


async def test_a_bot_without_the_members_intent_sees_a_role_change_when_it_asks(fake, guild, ann):
    async with running_bot(fake, ProbeBot()) as bot:
        painters = guild.add_role("Painters")
        guild.set_member_roles(ann, (painters,))
        fetched = await bot.get_guild(guild.id).fetch_member(ann.id)
        assert [r.name for r in fetched.roles] == ["@everyone", "Painters"]
        with pytest.raises(ValueError, match="not roles of"):
            guild.set_member_roles(ann, (fake.add_guild("Elsewhere").add_role("Theirs"),))


async def test_command_permissions_and_contexts(fake, ann, boss, general):
    async with running_bot(fake, ProbeBot()):
        allowed = await fake.slash(boss, general, "purge")  # boss has Manage Server through a role
        assert (await allowed.original()).content == "manage_guild=True"
        with pytest.raises(CommandNotAvailable, match="lacks the permissions"):
            await fake.slash(ann, general, "purge")  # Discord would not even offer it to ann
        overridden = await fake.slash(ann, general, "purge", override_permissions=True)  # an admin's override
        assert (await overridden.original()).content == "manage_guild=False"
        with pytest.raises(CommandNotAvailable, match="cannot be used in DMs"):
            await fake.slash(ann, await fake.dm_channel(ann), "purge")
        in_dm = await fake.slash(ann, await fake.dm_channel(ann), "vote")
        assert (await in_dm.original()).channel.recipient is ann.user


async def test_defer_then_followup_with_file(fake, ann, general):
    async with running_bot(fake, ProbeBot()):  # global sync
        assert {c["name"] for c in fake.commands()} >= {"dataset", "vote"}
        inter = await fake.slash(
            ann, general, "dataset add", {"caption": "me"}, attachments={"photo": ("me.jpg", JPEG, "image/jpeg")}
        )
        assert await inter.acknowledged() == 5
        assert inter.ack_ms is not None and inter.ack_ms < 3000
        followup = await inter.wait_followup()
        assert followup.content == f"added me.jpg ({len(JPEG)} bytes, image/jpeg): me"
        assert [(a.filename, a.content_type, a.data) for a in followup.attachments] == [
            ("thumb.jpg", "image/jpeg", JPEG[:8])
        ]
        assert inter.ephemeral and followup.ephemeral
        # The first follow-up after a deferred response fills in the "thinking" message, as on Discord.
        assert await inter.original() is followup
        assert [v["flags"] for v in followup.versions] == [64 | 128, 64]
        async with aiohttp.ClientSession() as session, session.get(followup.attachments[0].url) as response:
            assert await response.read() == JPEG[:8]
    assert fake.ack_latencies_ms() == [inter.ack_ms]


async def test_edit_original_response(fake, ann, general):
    async with running_bot(fake, ProbeBot()):
        inter = await fake.slash(ann, general, "dataset photos count")
        original = await inter.original()
        await fake.wait_for_edit(original, lambda m: m.content == "3 photos")
        assert [v["content"] for v in original.versions] == ["counting…", "3 photos"]
        assert original.edits == 1 and not inter.ephemeral


async def test_button_click_is_handled_by_the_view(fake, ann, boss, general):
    async with running_bot(fake, ProbeBot()):
        inter = await fake.slash(ann, general, "vote")
        message = await inter.original()
        assert message.buttons() == [("vote:yes", "Yes", False)]
        click = await fake.click(boss, message, "vote:yes")
        assert await click.acknowledged() == 7
        await fake.wait_for_edit(message, lambda m: m.content == "Voted yes by boss")
        assert message.buttons() == [("vote:yes", "Yes", True)]
        with pytest.raises(InvalidInteraction, match="disabled"):
            await fake.click(ann, message, "vote:yes")


async def test_modal_submit(fake, ann, general):
    async with running_bot(fake, ProbeBot()):
        inter = await fake.slash(ann, general, "feedback")
        assert await inter.acknowledged() == 9
        submitted = await fake.submit_modal(ann, inter, {"feedback:text": "lovely"})
        reply = await submitted.original()
        assert reply.content == "thanks: lovely" and reply.ephemeral


async def test_dm_with_attachment_read_by_the_bot(fake, ann):
    async with running_bot(fake, ProbeBot()):
        sent = await fake.dm(ann, "here is one", attachments=[("me.jpg", JPEG, "image/jpeg")])
        dm = await fake.dm_channel(ann)
        assert sent.channel is dm
        reply = await dm.wait_for_message(lambda m: m.author_id == fake.bot_user.id)
        assert reply.content == f"got me.jpg (image/jpeg): {len(JPEG)} bytes, ffd8"
        # A file whose declared type lies is served as declared: the bot sees what a hostile upload claims.
        await fake.dm(ann, "", attachments=[("cat.jpg", b"MZ\x90\x00", "image/jpeg")])
        liar = await dm.wait_for_message(lambda m: "cat.jpg" in m.content)
        assert liar.content == "got cat.jpg (image/jpeg): 4 bytes, 4d5a"


async def test_post_and_edit_a_channel_message(fake, ann, general):
    async with running_bot(fake, ProbeBot()):
        inter = await fake.slash(ann, general, "announce", {"text": "news"})
        posted = await general.wait_for_message(lambda m: m.content.startswith("news"))
        await fake.wait_for_edit(posted, lambda m: m.content == "news (edited)")
        assert posted.author_id == fake.bot_user.id and posted.edits == 1
        assert (await inter.original()).ephemeral


async def test_a_start_too_slow_is_reported_with_where_it_waited_not_by_what_closing_broke(fake):
    with pytest.raises(TimeoutError, match=r"not ready within 0.2 s; its start was at .*open_the_records"):
        async with running_bot(fake, SlowStartBot(), ready_timeout=0.2):
            pytest.fail("the bot cannot have been ready")


async def test_late_acknowledgement_is_unknown_interaction(fake, ann, general):
    fake.expect_error(404, code=10062)
    async with running_bot(fake, ProbeBot()) as bot:
        inter = await fake.slash(ann, general, "wait")
        fake.advance_clock(3.2)  # the bot "took" 3.2 s: measured on the stand-in's clock, no real sleep
        bot.gate.set()
        what, exc = await bot.next_outcome()
        assert what == "defer failed" and isinstance(exc, discord.NotFound) and exc.code == 10062
        assert inter.callback_type is None and inter.rejected == [(404, 10062)]


async def test_blocked_bot_loop_is_late(fake, ann, general):
    """The stand-in keeps its own clock on its own thread, so a bot that blocks its loop is seen to be late.

    The one test with a real 3.2 s wait; the sleep is the bot's bug under test, not a wait for state.
    """
    fake.expect_error(404, code=10062)
    async with running_bot(fake, ProbeBot()) as bot:
        inter = await fake.slash(ann, general, "block")
        what, exc = await bot.next_outcome(timeout=10)
        assert what == "defer failed" and exc.code == 10062
        assert inter.rejected == [(404, 10062)]


async def test_other_routes_a_bot_uses(fake, ann, general):
    async with running_bot(fake, ProbeBot()) as bot:
        inter = await fake.slash(ann, general, "misc")
        what, seen = await bot.next_outcome()
        assert what == "misc"
        assert seen == {
            "original": ("with file", ["a.png"]),
            "extra": "extra edited",
            "fetched": "history",
            "history": ["history", "with file"],
            "guild": "Team",
            "member": "ann",
            "channel": "general",
        }
        original = await inter.original()
        assert original.attachments[0].content_type == "image/png"
        assert [m.content for m in inter.followups] == ["extra edited"] and inter.followups[0].deleted
        assert [m.content for m in general.messages] == ["with file"]  # the posted one was deleted
        dm = await fake.dm_channel(ann)
        assert [m.content for m in dm.messages] == ["psst"]


async def test_second_acknowledgement_is_rejected(fake, ann, general):
    """Two copies of the bot on one token (an old deploy still running) both answer one interaction."""
    fake.expect_error(400, code=40060)
    async with running_bot(fake, ProbeBot()) as first, running_bot(fake, ProbeBot()) as second:
        inter = await fake.slash(ann, general, "ack")
        results = [(await first.next_outcome())[1], (await second.next_outcome())[1]]
        assert results.count("ok") == 1
        refused = next(r for r in results if r != "ok")
        assert isinstance(refused, discord.HTTPException) and refused.code == 40060
        assert inter.callback_type == 5 and inter.rejected == [(400, 40060)]


async def test_content_over_2000_characters(fake, ann, general):
    fake.expect_error(400, code=50035)
    async with running_bot(fake, ProbeBot()) as bot:
        inter = await fake.slash(ann, general, "long")
        what, exc = await bot.next_outcome()
        assert what == "long failed" and exc.status == 400 and exc.code == 50035
        assert "data.content" in exc.text and "2000" in exc.text
        assert inter.callback_type is None


async def test_body_violating_the_openapi_schema(fake, ann, general):
    fake.expect_error(400, code=50035)
    async with running_bot(fake, ProbeBot()) as bot:
        await fake.slash(ann, general, "bad-embed")
        what, exc = await bot.next_outcome()
        assert what == "embed failed" and exc.code == 50035
        assert "embeds.0.title" in exc.text and "256" in exc.text  # from the multipart's payload_json
        assert not [m for m in general.messages if m.embeds]


def test_a_body_found_valid_before_does_not_let_a_different_one_through():
    """The stand-in keeps the bodies it found valid; one differing only in a value's type or content is still judged."""
    from fake_discord.errors import DiscordError
    from fake_discord.openapi import OpenAPI

    spec = OpenAPI.load()
    callback = "/interactions/{interaction_id}/{interaction_token}/callback"
    for _ in range(2):
        spec.validate("POST", callback, {"type": 5, "data": {"flags": 64}})
        spec.validate("POST", callback, {"data": {"flags": 64}, "type": 5})  # key order means nothing
    for bad in ({"type": "5", "data": {"flags": 64}}, {"type": 5, "data": {"flags": "64"}}):
        for _ in range(2):
            with pytest.raises(DiscordError) as raised:
                spec.validate("POST", callback, bad)
            assert raised.value.status == 400 and raised.value.code == 50035


async def test_followup_after_token_expiry(fake, ann, general):
    fake.expect_error(401, code=50027)
    async with running_bot(fake, ProbeBot()) as bot:
        inter = await fake.slash(ann, general, "later")
        assert await inter.acknowledged() == 5
        fake.advance_clock(16 * 60)
        bot.gate.set()
        what, exc = await bot.next_outcome()
        assert what == "follow-up failed" and exc.status == 401 and exc.code == 50027
        assert inter.followups == []


async def test_limits_without_a_bot(fake: FakeDiscord, general: Channel):
    """Rules checked at the HTTP level, with requests no discord.py helper would let through."""
    headers = {"Authorization": f"Bot {fake.token}"}
    messages = f"{fake.api_url}/channels/{general.id}/messages"
    commands_url = f"{fake.api_url}/applications/{fake.application_id}/commands"
    for status, code in [(400, 50035), (413, 40005), (401, 0)]:
        fake.expect_error(status, code)

    def multipart(count: int, size: int = 1) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("payload_json", json.dumps({"content": "files"}), content_type="application/json")
        for n in range(count):
            form.add_field(f"files[{n}]", b"x" * size, filename=f"f{n}.txt", content_type="text/plain")
        return form

    def command(name: str, description: str = "ok") -> list[dict]:
        return [{"name": name, "description": description, "type": 1}]

    async with aiohttp.ClientSession(headers=headers) as session:

        async def send(method: str, url: str, **kwargs) -> tuple[int, dict]:
            async with session.request(method, url, **kwargs) as response:
                assert response.headers["Content-Type"] == "application/json"
                return response.status, await response.json()

        assert (await send("POST", messages, json={"content": "x" * 2000}))[0] == 200
        assert (await send("POST", messages, json={"content": "x" * 2001}))[1]["code"] == 50035
        assert (await send("POST", messages, json={"content": "hi", "embeds": [{"title": "t"}] * 11}))[1][
            "code"
        ] == 50035
        assert (await send("POST", messages, data=multipart(10)))[0] == 200
        status, body = await send("POST", messages, data=multipart(11))
        assert status == 400 and "attachments" in body["errors"]
        status, body = await send("POST", messages, data=multipart(1, size=10 * 1024 * 1024 + 1))
        assert (status, body["code"]) == (413, 40005)
        status, body = await send("POST", messages, json={"content": 5})  # the schema: content is a string
        assert status == 400 and body["errors"]["content"]["_errors"][0]["code"] == "BASE_TYPE_BAD_TYPE"

        assert (await send("PUT", commands_url, json=command("fine-name_2")))[0] == 200
        for bad in (command("Upper"), command("has space"), command("x" * 33), command("ok", "d" * 101)):
            status, body = await send("PUT", commands_url, json=bad)
            assert (status, body["code"]) == (400, 50035), bad
        nested = [{"name": "top", "description": "d", "options": [{"type": 1, "name": "Sub", "description": "d"}]}]
        status, body = await send("PUT", commands_url, json=nested)
        assert body["errors"]["0"]["options"]["0"]["name"]["_errors"][0]["code"] == "APPLICATION_COMMAND_INVALID_NAME"
        assert [c["name"] for c in fake.commands()] == ["fine-name_2"]

        assert (await send("GET", f"{fake.api_url}/users/@me", headers={"Authorization": "Bot wrong"}))[0] == 401
    assert not fake.unexpected_errors()


class _Heartbeats(logging.Handler):
    """discord.py's gateway log: its heartbeat thread's beats (DEBUG) and any warning."""

    def __init__(self, beats_wanted: int) -> None:
        super().__init__(logging.DEBUG)
        self.loop = asyncio.get_running_loop()
        self.beats = 0
        self.beats_wanted = beats_wanted
        self.enough = asyncio.Event()
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())
        elif record.getMessage().startswith("Keeping shard ID"):
            self.beats += 1
            if self.beats >= self.beats_wanted:
                self.loop.call_soon_threadsafe(self.enough.set)


async def test_heartbeats_are_acknowledged_in_time():
    """The stand-in's ACK comes after a round trip, as Discord's does, not before discord.py notes its beat."""
    with FakeDiscord(heartbeat_interval_ms=1000) as fake:
        fake.add_guild("Team")
        gateway_log = logging.getLogger("discord.gateway")
        heartbeats = _Heartbeats(beats_wanted=3)  # the second beat's ACK has come by the third beat
        level = gateway_log.level
        gateway_log.setLevel(logging.DEBUG)
        gateway_log.addHandler(heartbeats)
        try:
            async with running_bot(fake, ProbeBot()) as bot:
                await asyncio.wait_for(heartbeats.enough.wait(), 20)
                assert bot.latency < 1
        finally:
            gateway_log.removeHandler(heartbeats)
            gateway_log.setLevel(level)
    assert heartbeats.warnings == []
