"""A fresh runner and database per test, on the session's local Ray (tests/bot/conftest.py)."""

from __future__ import annotations

import itertools

import pytest
import pytest_asyncio

from bot.jobs.following import CaptionKeeper
from bot.jobs.runner import AccessCheck, JobRunner
from bot.jobs.store import JobStore
from bot.settings import BotSettings
from tests.bot.conftest import remove_actors

_prefixes = itertools.count()


def runner_settings(tmp_path, prefix: str, **overrides) -> BotSettings:
    """A runner's settings for tests: its own data folder and actor names, quick progress."""
    return BotSettings(
        data_dir=tmp_path / "data",
        ray_actor_prefix=f"{prefix}{next(_prefixes)}",
        gpu_sharing="share",
        progress_interval_s=0.2,
        generation_max_wait_s=5,
        **overrides,
    )


@pytest.fixture
def settings(tmp_path, local_ray) -> BotSettings:
    return runner_settings(tmp_path, "test")


@pytest_asyncio.fixture
async def make_runner(settings):
    """Runners on the test's database (several: a restarted bot is a second one); cleaned up after."""
    made: list[tuple[JobRunner, JobStore]] = []

    async def make(start: bool = True, captions: CaptionKeeper | None = None, access: AccessCheck | None = None,
                   **overrides) -> JobRunner:
        chosen = settings.model_copy(update=overrides)
        store = await JobStore.open(chosen.database_file)
        runner = JobRunner(store, chosen, captions=captions, access=access)
        made.append((runner, store))
        if start:
            await runner.start()
        return runner

    try:
        yield make
    finally:
        try:
            for runner, store in made:
                await runner.stop()
                await store.close()
        finally:
            for prefix in {runner.settings.ray_actor_prefix for runner, _ in made}:
                remove_actors(prefix)
