"""The GPU workers the runner may use: found as GPU nodes join the cluster, out of use while they are lost.

One trainer and one generator per GPU. A node that joins brings its pair in at the next
look (every DISCOVER_EVERY_S); with jobs waiting and no GPU at all, a pair is asked for
anyway, and Ray holds it pending: the demand an autoscaler answers with a GPU node. A
worker lost under a job is out of use until it answers again, wherever Ray restarts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bot.jobs import policy
from bot.jobs.policy import Replica, Worker
from bot.jobs.transport import RayTransport, WorkerLost
from bot.settings import BotSettings

log = logging.getLogger(__name__)

DISCOVER_EVERY_S = 5.0  # how often to look for GPU nodes that joined
RELOCATE_EVERY_S = 2.0  # how often to look for a lost worker's return


class WorkerPool:
    def __init__(self, transport: RayTransport, settings: BotSettings, on_change: Callable[[], None]):
        self.transport = transport
        self.settings = settings
        self.trainers: list[Worker] = []
        self.generators: list[Replica] = []
        self.policy = "share"  # or "yield": see policy.sharing_policy
        self._on_change = on_change  # a worker came or came back: time to dispatch
        self._coming: set[int] = set()  # GPU indices whose workers are being made
        self._looked_at = 0.0
        self._tasks: set[asyncio.Task] = set()

    @property
    def ready(self) -> bool:
        """Whether any trainer is up: without one, queued jobs wait for a GPU node to join."""
        return any(t.ready for t in self.trainers)

    @property
    def due(self) -> bool:
        return time.monotonic() - self._looked_at > DISCOVER_EVERY_S

    async def discover(self, demand: bool) -> None:
        """Workers for GPUs that joined since the last look (all of them, at start). `demand`: jobs are waiting."""
        self._looked_at = time.monotonic()
        count = await self.transport.gpu_count()
        if count == 0 and not self.trainers and not self._coming:
            if demand:
                self._spawn(self._bring_up(0))  # pending until a GPU node joins
            return
        indices = [i for i in range(len(self.trainers), count) if i not in self._coming]
        await asyncio.gather(*(self._bring_up(i) for i in indices))

    def lost(self, worker: Worker) -> None:
        """Take a lost worker out of use until it answers again (Ray restarts it, on any node with room)."""
        if not worker.ready:
            return
        worker.ready = False
        self._spawn(self._relocate(worker))

    async def forget_all(self) -> None:
        """Ray was lost with every worker: none is known until they are brought up again."""
        await self.stop()
        self.trainers, self.generators = [], []
        self._coming.clear()
        self._looked_at = 0.0

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _bring_up(self, index: int) -> None:
        """Make (or find) the trainer and generator of GPU `index`; waits until Ray has placed them."""
        self._coming.add(index)
        try:
            trainer, generator = self.transport.trainer(index), self.transport.generator(index)
            await asyncio.gather(self.transport.locate(trainer), self.transport.locate(generator))
            self.trainers.append(trainer)
            self.generators.append(generator)
            self.policy = policy.sharing_policy(
                self.settings.gpu_sharing, [t.gpu_gib for t in self.trainers], self.settings.share_min_gpu_gib
            )
            await asyncio.gather(*(self.transport.configure(t, self.policy == "yield") for t in self.trainers))
            log.info("GPU workers up: %s, %s", trainer.name, generator.name)
        finally:
            self._coming.discard(index)
        self._on_change()

    async def _relocate(self, worker: Worker) -> None:
        while True:
            try:
                await self.transport.locate(worker)
                break
            except WorkerLost:
                await asyncio.sleep(RELOCATE_EVERY_S)
        worker.ready = True
        log.info("%s is back", worker.name)
        self._on_change()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
