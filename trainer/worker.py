"""The GPU side of doppel's jobs: Ray actors that train and generate.

The bot process imports this module to name the actors, so torch and the
trainer's heavy modules are imported inside methods only.

Nothing here needs a disk shared with the bot: photos and checkpoints arrive as
bytes, and checkpoints, samples and the adapter leave as bytes in events.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

import ray

log = logging.getLogger(__name__)

OUT_OF_MEMORY = (
    "the GPU ran out of memory; try a lower resolution, or ask an admin about a leaner memory mode"
)


def describe_failure(exc: BaseException, doing: str) -> str:
    """What to tell a member when their job fails: their words, not a traceback."""
    from trainer.errors import DoppelError

    if isinstance(exc, DoppelError):
        return str(exc)
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return OUT_OF_MEMORY
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{doing} failed unexpectedly ({type(exc).__name__}: {detail})"


def location() -> dict:
    """Where this actor runs: the node, its GPU ids, and the GPU's memory if there is a real one."""
    gib = None
    try:
        import torch

        if torch.cuda.is_available():
            gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    except ImportError:
        pass
    context = ray.get_runtime_context()
    return {"node": context.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()], "gpu_gib": gib, "pid": os.getpid()}


def share_cpu_politely() -> None:
    """Without a GPU, leave one core to the bot: its event loop must answer Discord within 3 s."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def _offload(pipe) -> None:
    import gc

    import torch

    pipe.to("cpu")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Run:
    """One training job inside a TrainerWorker: its events, waiting to be collected."""

    def __init__(self, job_id: int, changed: threading.Condition):
        from trainer.progress import CancelToken

        self.job_id = job_id
        self.status = "running"  # then succeeded, failed, cancelled or paused
        self.error: str | None = None
        self.token = CancelToken()
        self.events: list[dict] = []
        self._seq = 0
        self._changed = changed

    def add(self, event: dict) -> None:
        with self._changed:
            # Step events are replaced, not piled up: only the newest matters to a reader.
            if event["type"] == "step" and self.events and self.events[-1]["type"] == "step":
                self.events.pop()
            self._seq += 1
            self.events.append(event | {"seq": self._seq})
            self._changed.notify_all()

    def end(self, status: str, error: str | None = None) -> None:
        with self._changed:
            self.status, self.error = status, error
            self._changed.notify_all()


@ray.remote(num_cpus=0, max_concurrency=8, max_restarts=-1, max_task_retries=0)
class TrainerWorker:
    """Trains one adapter at a time; keeps base pipelines loaded between jobs."""

    def __init__(self, offload_between_jobs: bool = False):
        share_cpu_politely()
        self.offload_between_jobs = offload_between_jobs
        self._changed = threading.Condition()
        self._run: _Run | None = None
        self._pipelines: dict[str, object] = {}

    def where(self) -> dict:
        return location()

    def configure(self, offload_between_jobs: bool) -> None:
        """Whether to move the base model off the GPU after each job (when it must yield the card)."""
        self.offload_between_jobs = offload_between_jobs

    def current(self) -> dict | None:
        run = self._run
        return {"job_id": run.job_id, "status": run.status} if run else None

    def start(
        self, job_id: int, params: dict, photos: dict[str, bytes], checkpoint: bytes | None, start: dict | None = None
    ) -> bool:
        """Begin a job in the background. Starting the job already running is a no-op.

        `checkpoint`: this job's own, to resume it. `start`: an earlier adapter to build on, before
        the job has a checkpoint: {"name": its file name (.ckpt or .safetensors), "data": bytes}.
        """
        with self._changed:
            if self._run is not None and self._run.status == "running":
                return self._run.job_id == job_id
            self._run = _Run(job_id, self._changed)
        threading.Thread(target=self._train, args=(self._run, params, photos, checkpoint, start), daemon=True).start()
        return True

    def poll(self, job_id: int, after: int, timeout: float = 1.0) -> dict | None:
        """Events after `after` (those up to it are dropped: they were received), and the status.

        Waits up to `timeout` for something new. None: this worker has no such job.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            run = self._run
            if run is None or run.job_id != job_id:
                return None
            run.events = [e for e in run.events if e["seq"] > after]
            while not run.events and run.status == "running" and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return {"status": run.status, "error": run.error, "events": list(run.events)}

    def cancel(self, job_id: int) -> None:
        run = self._run
        if run is not None and run.job_id == job_id:
            run.token.cancel()

    def pause(self, job_id: int) -> None:
        """Checkpoint at the next step boundary and stop, so generations can have the GPU."""
        run = self._run
        if run is not None and run.job_id == job_id:
            run.token.pause()

    def release(self, job_id: int) -> None:
        """Forget a finished job once its events are safely received."""
        with self._changed:
            if self._run is not None and self._run.job_id == job_id and self._run.status != "running":
                self._run = None

    def _pipeline(self, base):
        from trainer.base_model import load_pipeline, pick_device, pick_dtype

        if base.location not in self._pipelines:
            self._pipelines.clear()  # one base at a time: two FLUX.1-dev copies do not fit
            self._pipelines[base.location] = load_pipeline(base, pick_dtype(pick_device()))
        return self._pipelines[base.location]

    def _train(self, run: _Run, params: dict, photos: dict[str, bytes], checkpoint: bytes | None,
               start: dict | None) -> None:
        from trainer.base_model import resolve_base
        from trainer.config import TrainConfig
        from trainer.errors import TrainingCancelled, TrainingPaused
        from trainer.lora_file import read_facts
        from trainer.progress import CheckpointEvent, PhaseEvent, SampleEvent, StepEvent
        from trainer.train import train_lora

        pipe = None
        try:
            with tempfile.TemporaryDirectory(prefix="doppel-train-") as scratch:
                scratch = Path(scratch)
                images = scratch / "photos"
                images.mkdir()
                for name, data in photos.items():
                    (images / Path(name).name).write_bytes(data)
                resume = None
                if checkpoint is not None:
                    resume = scratch / "resume.ckpt"
                    resume.write_bytes(checkpoint)
                start_from = None
                if start is not None:
                    start_from = scratch / ("start" + Path(start["name"]).suffix)
                    start_from.write_bytes(start["data"])
                config = TrainConfig(
                    **params, images=images, out=scratch / "out", resume=resume, start_from=start_from
                )

                def on_event(event) -> None:
                    if isinstance(event, StepEvent):
                        run.add({"type": "step", **{k: getattr(event, k) for k in ("step", "total", "loss", "eta_s")}})
                    elif isinstance(event, PhaseEvent):
                        run.add({"type": "phase", "phase": event.phase, "detail": event.detail, "step": event.step})
                    elif isinstance(event, CheckpointEvent):
                        adapter = event.adapter.read_bytes() if event.adapter else None
                        run.add({"type": "checkpoint", "step": event.step, "data": event.path.read_bytes(),
                                 "adapter": adapter})
                        for older in event.path.parent.iterdir():
                            if older.is_file() and older not in (event.path, event.adapter):
                                older.unlink()  # the bot has it now; keep the worker's disk small
                    elif isinstance(event, SampleEvent):
                        images = [p.read_bytes() for p in event.paths]
                        run.add({"type": "sample", "step": event.step, "prompts": list(event.prompts), "images": images})

                base = resolve_base(config.base)
                pipe = self._pipeline(base)
                try:
                    result = train_lora(config, on_event=on_event, cancel=run.token, pipeline=pipe, base=base)
                except TrainingPaused as paused:
                    run.end("paused")
                    log.info("job %s paused after step %s", run.job_id, paused.step)
                    return
                except TrainingCancelled:
                    run.end("cancelled")
                    return
                run.add({"type": "lora", "data": result.lora_path.read_bytes(), "facts": read_facts(result.lora_path)})
                run.end("succeeded")
        except Exception as exc:  # the job fails; the worker lives on for the next one
            log.exception("training job %s failed", run.job_id)
            run.end("failed", describe_failure(exc, "training"))
        finally:
            if pipe is not None and self.offload_between_jobs:
                _offload(pipe)


@ray.remote(num_cpus=0, max_concurrency=1, max_restarts=-1, max_task_retries=0)
class GeneratorWorker:
    """A resident Flux pipeline answering generation requests, one at a time."""

    def __init__(self, base: str, max_adapters: int, hotswap: bool, compile: bool = False, fp8: bool = False,
                 offload: bool | str = False):
        from trainer.generate import Generator

        share_cpu_politely()
        self.generator = Generator(
            base, max_adapters=max_adapters, hotswap=hotswap, compile=compile, fp8=fp8, offload=offload
        )
        if compile:
            log.info("generator warmed up in %.1f s", self.generator.warm_up())
        self.adapter_dir = Path(tempfile.mkdtemp(prefix="doppel-adapters-"))
        self.offloaded = False

    def where(self) -> dict:
        return location()

    def offload(self) -> None:
        """Give the GPU's memory back (to a training run) until the next request."""
        if not self.offloaded and not self.generator.offload:  # with CPU offload it is already given back
            _offload(self.generator.pipe)
            self.offloaded = True

    def generate(self, request: dict, adapters: list[dict]) -> dict:
        """`adapters`: name, version, weight, and `data`, an ObjectRef fetched only if not held here.
        With `compare` in the request: one picture, the base model beside the adapters, same seed.

        Returns the images, or `error` for the member when their request cannot be served.
        """
        from trainer.generate import AdapterUse, GenerationRequest

        request = dict(request)
        comparing = request.pop("compare", False)
        try:
            uses = tuple(
                AdapterUse(a["name"], self._adapter_file(a["name"], a["version"], a["data"]), a["weight"])
                for a in adapters
            )
            if self.offloaded:
                self.generator.pipe.to(self.generator.device)
                self.offloaded = False
            if comparing:
                return {"images": [self._compare(request, uses)], "loaded": self.loaded()}
            images = self.generator.generate(GenerationRequest(adapters=uses, **request))
        except Exception as exc:
            log.exception("generation failed")
            return {"error": describe_failure(exc, "making the picture"), "loaded": self.loaded()}
        return {"images": [{"seed": i.seed, "png": i.png()} for i in images], "loaded": self.loaded()}

    def _compare(self, request: dict, uses: tuple) -> dict:
        from trainer.compare import side_by_side
        from trainer.generate import GenerationRequest
        from trainer.images import png_bytes

        import secrets

        request = request | {"count": 1}
        if request.get("seed") is None:  # both halves must share it
            request["seed"] = secrets.randbelow(2**32 - 4)
        base = self.generator.generate(GenerationRequest(adapters=(), **request))[0]
        tuned = self.generator.generate(GenerationRequest(adapters=uses, **request))[0]
        picture = side_by_side(base.image, tuned.image, ("base model", "with the adapter"))
        return {"seed": base.seed, "png": png_bytes(picture, tuned.info | {"compare": "base | adapter"})}

    def loaded(self) -> list[str]:
        return self.generator.loaded_adapters

    def forget(self, name: str) -> None:
        """A member deleted their adapter: unload it and delete the cached copy."""
        import shutil

        self.generator.forget(name)
        shutil.rmtree(self.adapter_dir / hashlib.sha256(name.encode()).hexdigest()[:16], ignore_errors=True)

    def _adapter_file(self, name: str, version: str, data) -> Path:
        folder = self.adapter_dir / hashlib.sha256(name.encode()).hexdigest()[:16]
        path = folder / f"{hashlib.sha256(version.encode()).hexdigest()[:16]}.safetensors"
        if not path.exists():
            folder.mkdir(exist_ok=True)
            for stale in folder.glob("*.safetensors"):
                stale.unlink()  # an older version of this member's adapter
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(ray.get(data))
            os.replace(tmp, path)
        return path
