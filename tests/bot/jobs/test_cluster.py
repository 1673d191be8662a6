"""The job runner on a real multi-node Ray cluster on this machine: one raylet per node, a head
without GPUs and nodes with one logical GPU each, added and removed as the tests need.

The nodes share no disk beyond what Ray moves: photos and checkpoints travel as bytes.
One cluster serves the module (starting one costs seconds); each test sets the number of
GPU nodes it starts from. The session's local Ray is shut down meanwhile and started again after.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import ray
import torch
from ray.cluster_utils import Cluster
from safetensors.torch import load_file

from bot.jobs import transport
from bot.settings import BotSettings
from contract import JobState
from tests.bot.conftest import away_from_local_ray
from tests.bot.jobs.conftest import runner_settings
from tests.bot.jobs.test_runner import ANN, BOB, Watch, past_step, training
from tests.conftest import TOKEN
from trainer.training.config import TrainConfig
from trainer.training.train import train_lora

pytestmark = pytest.mark.timeout(240)

OBJECT_STORE = 80 * 2**20
# A crashed node is noticed within ~3 s rather than Ray's default ~14 s.
FAST_HEALTH_CHECKS = {
    "health_check_period_ms": 500,
    "health_check_failure_threshold": 3,
    "health_check_timeout_ms": 500,
}



class GpuCluster:
    """A Ray cluster of a head with no GPU and nodes of one logical GPU each.

    Nodes are started and stopped from the main thread: Ray's processes die with the thread that started them.
    """

    def __init__(self):
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "num_gpus": 0, "object_store_memory": OBJECT_STORE,
                            "include_dashboard": False, "_system_config": FAST_HEALTH_CHECKS},
        )
        self.gpu_nodes: list = []

    def add(self):
        """A node with one GPU joins (a GPU group scaling up)."""
        node = self.cluster.add_node(num_cpus=1, num_gpus=1, object_store_memory=OBJECT_STORE)
        self.gpu_nodes.append(node)
        return node

    def resize(self, count: int) -> None:
        """Exactly `count` GPU nodes, known to the cluster, before a test starts."""
        while len(self.gpu_nodes) > count:
            self.cluster.remove_node(self.gpu_nodes.pop())  # gracefully: it leaves the cluster at once
        while len(self.gpu_nodes) < count:
            self.add()
        self.cluster.wait_for_nodes()

    def crash(self, node_id: str) -> None:
        """The node dies at once, its raylet and workers killed, as a machine lost."""
        node = next(n for n in self.gpu_nodes if n.node_id == node_id)
        self.gpu_nodes.remove(node)
        self.cluster.remove_node(node, allow_graceful=False)

    def node_ids(self) -> set[str]:
        return {n.node_id for n in self.gpu_nodes}


@pytest.fixture(scope="module")
def cluster(tiny_dir):
    # After tiny_dir: the nodes' workers inherit MODEL_CACHE_DIR and HF_HUB_OFFLINE from this process.
    with away_from_local_ray():
        made = GpuCluster()
        try:
            ray.init(address=made.cluster.address, namespace=transport.NAMESPACE, log_to_driver=False)
            yield made
        finally:
            ray.shutdown()
            made.cluster.shutdown()


@pytest.fixture
def settings(tmp_path, cluster) -> BotSettings:
    """tests/bot/jobs/conftest.py's settings on the cluster; a lost worker is given up on after 5 s."""
    return runner_settings(tmp_path, "cluster", worker_patience_s=5)


class Timeline:
    """Every update of some jobs, with when it came and which trainer ran the job then."""

    def __init__(self, runner, job_ids):
        self.entries: list[tuple[float, int, JobState, int | None, str | None]] = []
        self._runner = runner
        for job_id in job_ids:
            runner.subscribe(job_id, self._add)

    def _add(self, update) -> None:
        worker = next((t.name for t in self._runner.trainers if t.job_id == update.job_id), None)
        step = update.progress.step if update.progress else None
        self.entries.append((time.monotonic(), update.job_id, update.state, step, worker))

    def first_running(self, job_id: int) -> float:
        """When its trainer accepted the job (the runner says RUNNING only then)."""
        return min(t for t, j, state, _, _ in self.entries if j == job_id and state is JobState.RUNNING)

    def workers(self, job_id: int) -> set[str]:
        return {w for _, j, _, _, w in self.entries if j == job_id and w is not None}


def small(photos, steps: int) -> dict:
    return training(photos, steps=steps, checkpoint_every=10, sample_every=0)


async def test_two_trainings_run_at_once_on_two_nodes(cluster, make_runner, photos):
    cluster.resize(2)
    runner = await make_runner()
    assert len(runner.trainers) == len(runner.generators) == 2
    assert {t.location[0] for t in runner.trainers} == cluster.node_ids()  # one trainer per node

    jobs = [await runner.submit_training(owner, **small(photos, steps=20)) for owner in (ANN, BOB)]
    timeline = Timeline(runner, [j.id for j in jobs])
    done = [await runner.wait(j.id, timeout=150) for j in jobs]

    assert all(d.state is JobState.SUCCEEDED for d in done), [d.error for d in done]
    assert all(d.attempts == 1 and d.progress.step == 20 for d in done)
    node_of = {t.name: t.location[0] for t in runner.trainers}
    (first,), (second,) = (timeline.workers(j.id) for j in jobs)
    assert node_of[first] != node_of[second]
    # Both ran at once: each trainer had taken its job on (and was training it) before either job ended.
    finished = [runner.timings[j.id]["finished"] for j in jobs]
    assert max(timeline.first_running(j.id) for j in jobs) < min(finished)


STEPS = 120


async def test_a_training_whose_node_dies_resumes_on_another_and_ends_as_if_unbroken(
    cluster, make_runner, photos, tmp_path
):
    cluster.resize(2)
    runner = await make_runner()
    # Long enough not to end before the crash: the news of step 20 comes some 10-30 steps late.
    job = await runner.submit_training(ANN, **training(photos, steps=STEPS, checkpoint_every=20, sample_every=0))
    timeline = Timeline(runner, [job.id])
    # Events are handled in order, so news of step 21 means step 20's checkpoint is in the record.
    await Watch(runner, job.id).until(past_step(21), timeout=120)

    (lost,) = [t for t in runner.trainers if t.job_id == job.id]
    dead_node = lost.location[0]
    cluster.crash(dead_node)
    # The run to compare with, made here while Ray notices the loss (the cores are idle meanwhile).
    config = TrainConfig.from_options(base="tiny", images=photos, token=TOKEN, out=tmp_path / "unbroken", steps=STEPS,
                                      lr=1e-2, checkpoint_every=20, sample_every=0)
    unbroken = asyncio.create_task(asyncio.to_thread(train_lora, config))
    done = await runner.wait(job.id, timeout=150)

    assert done.state is JobState.SUCCEEDED, done.error
    assert done.attempts == 2
    assert 20 <= done.progress.resumed_from < STEPS and done.progress.resumed_from % 20 == 0  # its newest checkpoint
    (survivor,) = timeline.workers(job.id) - {lost.name}
    survivor_node = {t.name: t.location[0] for t in runner.trainers}[survivor]
    assert survivor_node != dead_node and survivor_node in cluster.node_ids()
    assert not lost.ready  # its trainer waits for a free GPU; the node that had one is gone

    resumed, whole = load_file(done.training_result.adapter), load_file((await unbroken).lora_path)
    assert resumed.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6)


async def test_jobs_wait_for_a_gpu_node_to_join_a_cluster_that_has_none(cluster, make_runner, photos):
    cluster.resize(0)
    runner = await make_runner()
    assert runner.trainers == [] and not runner.gpu_ready

    job = await runner.submit_training(ANN, **small(photos, steps=3))
    watch = Watch(runner, job.id)
    await watch.until(lambda u: u.waiting_for_gpu, timeout=30)
    told = next(u for u in watch.updates if u.waiting_for_gpu)
    assert told.state is JobState.QUEUED and told.position == 1
    assert (await runner.store.get(job.id)).state is JobState.QUEUED and not runner.gpu_ready

    node = cluster.add()  # the GPU group scales up; the runner looks for new GPUs every few seconds
    done = await runner.wait(job.id, timeout=150)
    assert done.state is JobState.SUCCEEDED, done.error
    assert runner.gpu_ready and [t.location[0] for t in runner.trainers] == [node.node_id]
    assert [u.state for u in watch.updates][-1] is JobState.SUCCEEDED
