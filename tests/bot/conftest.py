"""A real local Ray with one logical GPU, started once for every test that needs it."""

from __future__ import annotations

import pytest
import ray

from bot.jobs import backend


@pytest.fixture(scope="session")
def local_ray(tiny_dir):
    # After tiny_dir: workers inherit MODEL_CACHE_DIR and HF_HUB_OFFLINE from this process.
    ray.init(
        num_cpus=2,
        num_gpus=1,
        include_dashboard=False,
        namespace=backend.NAMESPACE,
        object_store_memory=256 * 2**20,
        log_to_driver=False,
    )
    yield
    ray.shutdown()
