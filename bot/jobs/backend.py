"""Ray: start or join it, and find doppel's workers on it.

Per GPU there is one trainer and one generator, both detached and named, so a
restarted bot finds the trainer's running job and the generator's loaded model.
Ray's GPU accounting puts them on the same card: the generator takes
`generator_gpu_share`, the trainer the rest, and two trainers never share a card.
Ray does not police GPU memory; the runner's sharing policy does (see README,
"Sharing a GPU").
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import ray
from ray.exceptions import ActorUnavailableError

from bot.settings import BotSettings
from trainer.settings import TrainerSettings
from trainer.worker import GeneratorWorker, TrainerWorker

log = logging.getLogger(__name__)

NAMESPACE = "doppel"


@dataclass
class Worker:
    name: str
    handle: object  # a Ray actor handle
    location: tuple[str, tuple[str, ...]] = ("", ())  # (node, GPU ids): which card it is on
    gpu_gib: float | None = None
    job_id: int | None = None  # the job it is running, as the runner sees it


@dataclass
class Replica(Worker):
    adapters: set[str] = field(default_factory=set)  # adapter names it holds, for routing
    offloaded: bool = False


def connect(settings: BotSettings) -> None:
    """Join RAY_ADDRESS, or start a local Ray without a dashboard. Blocking: call from a thread."""
    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace=NAMESPACE, log_to_driver=False)
        return
    gpus = settings.ray_num_gpus
    ray.init(namespace=NAMESPACE, include_dashboard=False, num_gpus=gpus, log_to_driver=False)
    if not ray.cluster_resources().get("GPU"):
        log.warning("Ray found no GPU: set RAY_NUM_GPUS=1 to run GPU work on the CPU (slow but real)")


def gpu_count() -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def trainers(settings: BotSettings) -> list[Worker]:
    found = []
    for index in range(gpu_count()):
        name = f"{settings.ray_actor_prefix}-trainer-{index}"
        handle = TrainerWorker.options(
            name=name,
            lifetime="detached",
            get_if_exists=True,
            num_gpus=1 - settings.generator_gpu_share,
        ).remote()
        found.append(Worker(name, handle))
    return found


def generators(settings: BotSettings) -> list[Replica]:
    trainer_settings = TrainerSettings()
    found = []
    for index in range(gpu_count()):
        name = f"{settings.ray_actor_prefix}-generator-{index}"
        # Detached, as the trainers: a restarted bot finds the model still loaded, and an old handle
        # going out of scope cannot take the actor down under the new bot.
        handle = GeneratorWorker.options(
            name=name, lifetime="detached", get_if_exists=True, num_gpus=settings.generator_gpu_share
        ).remote(
            trainer_settings.base_model,
            trainer_settings.generator_max_adapters,
            trainer_settings.lora_hotswap,
            compile=trainer_settings.generator_compile,
            fp8=trainer_settings.generator_fp8,
            offload=trainer_settings.generator_offload,
        )
        found.append(Replica(name, handle))
    return found


async def locate(worker: Worker, patience_s: float = 60) -> None:
    """Ask a worker where it runs; this waits for it to be up, through a restart if it is in one."""
    deadline = asyncio.get_running_loop().time() + patience_s
    while True:
        try:
            where = await worker.handle.where.remote()
            break
        except ActorUnavailableError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)  # Ray is restarting it
    worker.location = (where["node"], tuple(where["gpus"]))
    worker.gpu_gib = where["gpu_gib"]


def remove(workers: list[Worker]) -> None:
    """Kill workers for good (tests, and `admin` shutdowns); detached ones outlive the bot otherwise."""
    for worker in workers:
        ray.kill(worker.handle, no_restart=True)
