"""A real local Ray with one logical GPU, started once for every test that needs it.

Tests that need a Ray of their own (tests/bot/jobs/test_cluster.py: a cluster of several
nodes) step away from it with `away_from_local_ray`, which starts it again afterwards, so the
tests that follow find it whatever the order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import ray

from bot.jobs import transport


def start_local_ray() -> None:
    ray.init(
        address="local",  # never join another Ray on this machine
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        namespace=transport.NAMESPACE,
        object_store_memory=256 * 2**20,
        log_to_driver=False,
    )


def remove_actors(prefix: str) -> None:
    """Kill every doppel actor named with `prefix`, located by a runner or still pending: one test's leftovers
    must not hold the one logical GPU that the next test's workers wait for."""
    for name in ray.util.list_named_actors():
        if name.startswith(f"{prefix}-"):
            with contextlib.suppress(ValueError):
                ray.kill(ray.get_actor(name), no_restart=True)


@pytest.fixture(scope="session")
def local_ray(tiny_dir):
    # After tiny_dir: workers inherit MODEL_CACHE_DIR and HF_HUB_OFFLINE from this process.
    start_local_ray()
    yield
    ray.shutdown()


@contextlib.contextmanager
def away_from_local_ray() -> Iterator[None]:
    """Shut the session's local Ray down, if it runs, for the block; start it again after.

    Call it from the main thread (a sync fixture): Ray's processes die with the thread that started them.
    """
    was_running = ray.is_initialized()
    ray.shutdown()
    try:
        yield
    finally:
        ray.shutdown()
        if was_running:
            start_local_ray()
