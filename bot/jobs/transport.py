"""Ray, for the runner: start or join it, find doppel's workers, and call them. The only module of the bot that
imports ray.

Per GPU there is one trainer and one generator, both detached and named, so a
restarted bot finds the trainer's running job and the generator's loaded model.
Ray's GPU accounting puts them on the same card: the generator takes
`generator_gpu_share`, the trainer the rest, and two trainers never share a card.
Ray does not police GPU memory; the runner's sharing policy does (README, "Sharing a GPU").

Every call that can find its worker gone raises `WorkerLost`; a worker that Ray is
restarting is waited for (up to a minute) rather than called lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import ray
from ray.exceptions import ActorUnavailableError, RayActorError

from bot.jobs import ray_leftovers, recovery
from bot.jobs.policy import Replica, Worker
from bot.settings import BotSettings
from contract import GenerateRequest, PicturesMade, Report, RunStatus, TrainingFiles, TrainRequest
from trainer.worker import GeneratorWorker, TrainerWorker

log = logging.getLogger(__name__)

NAMESPACE = "doppel"
BLOBS_KEPT = 16  # adapters held in Ray's object store for generators to fetch, least recently used out

T = TypeVar("T")


class WorkerLost(Exception):
    """The worker died, or restarted and no longer has the job."""


def connect(settings: BotSettings) -> None:
    """Join RAY_ADDRESS, or start a local Ray without a dashboard. Blocking: call from a thread."""
    if ray.is_initialized():
        return
    if settings.ray_address:
        ray.init(address=settings.ray_address, namespace=NAMESPACE, log_to_driver=False)
        return
    ray_leftovers.end_leftovers(settings.data_dir)  # a killed bot's, before this one's (see that module)
    # address="local": a new Ray of our own, never one that happens to run on this machine already.
    ray.init(
        address="local", namespace=NAMESPACE, include_dashboard=False,
        num_gpus=settings.ray_num_gpus,  # type: ignore[arg-type]  # typed int, but a float is passed on as is
        log_to_driver=False,
    )
    ray_leftovers.record(settings.data_dir)
    if not ray.cluster_resources().get("GPU"):
        log.warning("Ray found no GPU: set RAY_NUM_GPUS=1 to run GPU work on the CPU (slow but real)")


def gpu_count() -> int:
    """GPUs in the cluster now. Nodes may join later (a GPU group that scales from zero)."""
    return int(ray.cluster_resources().get("GPU", 0))


def _in_lasting_thread(function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run `function` in a thread that lives as long as the process, and await it.

    A local Ray's processes die with the thread that started them (Ray sets PR_SET_PDEATHSIG,
    which follows the creating thread): started from a pool thread, they die when the pool does.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        try:
            value = function(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(future.set_exception, exc)
        else:
            loop.call_soon_threadsafe(future.set_result, value)
        threading.Event().wait()

    threading.Thread(target=run, name="ray-starter", daemon=True).start()
    return future


class RayTransport:
    def __init__(self, settings: BotSettings):
        self.settings = settings
        # adapter identity -> (its name, its bytes in the object store), least recently used first
        self._blobs: OrderedDict[str, tuple[str, ray.ObjectRef]] = OrderedDict()
        self.owns_ray = False  # this process started the Ray it uses (a local one): it ends with the bot

    async def connect(self) -> None:
        if ray.is_initialized():
            return
        if self.settings.ray_address:
            await asyncio.to_thread(connect, self.settings)
        else:
            await _in_lasting_thread(connect, self.settings)
            self.owns_ray = True

    def ray_lost(self) -> bool:
        """Whether the local Ray this process started lost its GCS or raylet (killed, crashed, out of memory).

        Only a local Ray is watched: a cluster (RAY_ADDRESS) keeps its own GCS up, and a driver that cannot reach
        it for Ray's reconnect timeout exits (the restart policy brings the bot back)."""
        if not self.owns_ray:
            return False
        node = getattr(ray._private.worker, "_global_node", None)  # Ray's own record of the processes it started
        if node is None:
            return True
        return any(
            info.process.poll() is not None
            for kind in ("gcs_server", "raylet") for info in node.all_processes.get(kind, [])
        )

    async def restart_ray(self) -> None:
        """A new local Ray in place of a lost one: the old one shut down (what is left of it), a new one started
        from a thread that lives as long as the process. Raises when it cannot start (the caller retries)."""
        self._blobs.clear()  # the object store went with the old Ray
        await asyncio.to_thread(ray.shutdown)
        await _in_lasting_thread(connect, self.settings)

    async def gpu_count(self) -> int:
        return await asyncio.to_thread(gpu_count)

    # ---- finding workers --------------------------------------------------------------------

    def trainer(self, index: int) -> Worker:
        name = f"{self.settings.ray_actor_prefix}-trainer-{index}"
        handle = TrainerWorker.options(  # type: ignore[attr-defined]
            name=name, lifetime="detached", get_if_exists=True, num_gpus=1 - self.settings.generator_gpu_share
        ).remote()
        return Worker(name, handle)

    def generator(self, index: int) -> Replica:
        name = f"{self.settings.ray_actor_prefix}-generator-{index}"
        # Detached, as the trainers: a restarted bot finds the model still loaded, and an old handle
        # going out of scope cannot take the actor down under the new bot.
        handle = GeneratorWorker.options(  # type: ignore[attr-defined]
            name=name, lifetime="detached", get_if_exists=True, num_gpus=self.settings.generator_gpu_share
        ).remote(
            self.settings.generator_max_adapters,
            self.settings.lora_hotswap,
            compile=self.settings.generator_compile,
            fp8=self.settings.generator_fp8,
            offload=self.settings.generator_offload,
            # How a generator runs is the bot's setting too. Requests name their base; this one loads before the first.
            preload=self.settings.picture_model,
        )
        return Replica(name, handle)

    async def locate(self, worker: Worker) -> None:
        """Ask a worker where it runs; this waits for it to be up, through a restart if it is in one."""
        where = await self._call(worker, "where")
        worker.location = (where["node"], tuple(where["gpus"]))
        worker.gpu_gib = where["gpu_gib"]

    def remove(self, workers: list[Worker]) -> None:
        """Kill workers for good (tests, and shutdowns); detached ones outlive the bot otherwise."""
        for worker in workers:
            ray.kill(worker.handle, no_restart=True)

    def stop_by_force(self, worker: Worker) -> None:
        """Kill a worker that did not step aside in time; Ray restarts it and its job resumes elsewhere."""
        ray.kill(worker.handle, no_restart=False)

    # ---- training ---------------------------------------------------------------------------

    async def configure(self, trainer: Worker, offload_between_jobs: bool) -> None:
        await self._call(trainer, "configure", offload_between_jobs)

    async def current(self, trainer: Worker) -> tuple[int, RunStatus] | None:
        """The job the trainer holds and its status, or None (also when it is gone)."""
        try:
            return await self._call(trainer, "current")
        except WorkerLost:
            return None

    async def start_training(self, trainer: Worker, job_id: int, request: TrainRequest, files: TrainingFiles) -> bool:
        """False: the trainer is busy with another job."""
        return await self._call(trainer, "start", job_id, request, files)

    async def poll(self, trainer: Worker, job_id: int, after: int, wait_s: float) -> Report:
        report = await self._call(trainer, "poll", job_id, after, wait_s)
        if report is None:  # it restarted and no longer has the job
            raise WorkerLost(f"{trainer.name} no longer has job {job_id}")
        return report

    async def cancel(self, trainer: Worker, job_id: int) -> None:
        await self._call(trainer, "cancel", job_id)

    async def pause(self, trainer: Worker, job_id: int) -> None:
        await self._call(trainer, "pause", job_id)

    async def release(self, trainer: Worker, job_id: int) -> None:
        await self._call(trainer, "release", job_id)

    # ---- pictures ---------------------------------------------------------------------------

    def holds(self, identity: str) -> bool:
        return identity in self._blobs

    async def put_adapter(self, name: str, identity: str, data: bytes) -> None:
        self._blobs[identity] = (name, await asyncio.to_thread(ray.put, data))
        self._blobs.move_to_end(identity)
        while len(self._blobs) > BLOBS_KEPT:
            self._blobs.popitem(last=False)

    async def generate(self, replica: Replica, request: GenerateRequest, timeout_s: float,
                       photos: dict[str, bytes] | None = None) -> PicturesMade:
        """`photos`: the request's reference photos by identity, sent with this call alone (never kept in the
        object store: a member may take them back). Raises WorkerLost when the generator died or did not
        answer in time (it is then not trusted)."""
        # Inside a list, the refs are not resolved by Ray: a generator that holds an adapter never fetches it.
        blobs = [self._blobs[identity][1] for identity in request.file_identities]
        for identity in request.file_identities:
            self._blobs.move_to_end(identity)
        try:
            return await asyncio.wait_for(self._call(replica, "generate", request, blobs, photos or {}), timeout_s)
        except TimeoutError as exc:
            raise WorkerLost(f"{replica.name} made no picture in {timeout_s:g} s") from exc

    async def offload(self, replica: Replica) -> None:
        await self._call(replica, "offload")

    async def forget_adapter(self, replica: Replica, name: str) -> None:
        with contextlib.suppress(WorkerLost):  # a restarted generator holds nothing
            await self._call(replica, "forget", name)

    def drop_blobs_of(self, name: str) -> None:
        for identity in [i for i, (owner, _) in self._blobs.items() if owner == name]:
            del self._blobs[identity]

    # ---- calling ----------------------------------------------------------------------------

    async def _call(self, worker: Worker, method: str, *args: Any) -> Any:
        """Call an actor method, waiting out a restart (ActorUnavailableError) rather than calling it a loss.

        A restarted actor has lost its job; the caller learns that from the answer.
        """
        patience = self.settings.worker_patience_s
        since = time.monotonic()
        remote: Callable[..., Awaitable[Any]] = getattr(worker.handle, method).remote
        while True:
            try:
                return await remote(*args)
            except ActorUnavailableError as exc:
                if not recovery.keep_waiting(time.monotonic() - since, patience):
                    raise WorkerLost(f"{worker.name} stayed unavailable for {patience:g} s") from exc
                await asyncio.sleep(0.5)  # Ray is restarting the actor
            except RayActorError as exc:
                raise WorkerLost(f"{worker.name} died") from exc
