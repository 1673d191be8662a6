"""Pytest fixtures for the stand-in.

Register them in a test module (or a conftest) with

    pytest_plugins = ["fake_discord.fixtures"]

and use them like this:

    from fake_discord import running_bot

    async def test_hello(fake_discord):
        guild = fake_discord.add_guild("Team")             # build the world before the bot connects
        ann = guild.add_member("ann")
        general = guild.add_text_channel("general")
        async with running_bot(fake_discord, MyBot()) as bot:   # start, wait for on_ready, close on exit
            inter = await fake_discord.slash(ann, general, "hello")
            assert await inter.acknowledged() == 4
        # on teardown the fixture fails the test on any error response the test did not expect

(`running_bot` lives in running.py; it is re-exported here and by the package.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .api import FakeDiscord
from .running import running_bot

__all__ = ["fake_discord", "running_bot"]


@pytest.fixture
def fake_discord() -> Iterator[FakeDiscord]:
    """A started stand-in with discord.py pointed at it; fails the test on unexpected error responses.

    Failing happens at teardown (pytest reports it as an error of the test), after the test's own
    assertions, and lists every undeclared response with its method, path, code and detail.
    """
    fake = FakeDiscord().start()
    try:
        with fake.patch_discord_py():
            yield fake
    finally:
        fake.close()
    unexpected = fake.unexpected_errors()
    if unexpected:
        report = "\n".join(f"  {error}" for error in unexpected)
        pytest.fail(
            "fake-discord answered with errors the test did not declare with fake.expect_error(status, code):\n"
            + report,
            pytrace=False,
        )
