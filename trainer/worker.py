"""The GPU side of doppel's jobs: Ray actors that train and generate.

They speak the contract: requests arrive as `contract` types, training reports leave as
`contract` events (`Report`), pictures as `PicturesMade`. The trainer's own in-process events
(with local paths) become the contract's byte-carrying ones here, in `_to_wire`, and nowhere else.

The bot process imports this module to name the actors, so torch and the trainer's heavy
modules are imported inside methods only. Nothing here needs a disk shared with the bot:
photos and checkpoints arrive as bytes, and checkpoints, samples and the adapter leave as bytes.
A worker's own environment decides only where it runs: its devices and its model cache.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import ray

from contract import (
    CheckpointSaved,
    Event,
    GenerateRequest,
    Picture,
    PicturesMade,
    Report,
    RunLayout,
    RunStatus,
    SampleTaken,
    TrainingDone,
    TrainingFiles,
    TrainRequest,
)
from contract.atomic import atomic_write_bytes
from contract.library_warnings import quiet_library_warnings
from trainer.scratch import own_scratch, sweep

log = logging.getLogger(__name__)

OUT_OF_MEMORY = "the GPU ran out of memory; try a lower resolution, or ask an admin about a leaner memory mode"


def describe_failure(exc: BaseException, doing: str) -> str:
    """What to tell a member when their job fails: their words, not a traceback."""
    from contract import RequestError
    from trainer.errors import DoppelError

    if isinstance(exc, DoppelError | RequestError):
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
    return {"node": context.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()], "gpu_gib": gib,
            "pid": os.getpid()}


def share_cpu_politely() -> None:
    """Without a GPU, leave one core to the bot: its event loop must answer Discord within 3 s."""
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def _offload(pipe: Any) -> None:
    from trainer.models.memory import free_memory

    pipe.to("cpu")
    free_memory()


def _source_picture(request: GenerateRequest, blobs: list) -> Any:
    """The picture a request draws from, checked against the identity it names; None when it names none."""
    if request.source is None:
        return None
    import io

    from PIL import Image

    from contract import picture_identity
    from trainer.errors import DoppelError

    data = ray.get(blobs[0]) if blobs else b""
    if picture_identity(data) != request.source.identity:
        raise DoppelError("the picture to draw from did not arrive whole; ask again")
    with Image.open(io.BytesIO(data)) as picture:
        return picture.convert("RGB")


def _to_wire(event: Any) -> Event:
    """A trainer event as it crosses to the bot: local files become their bytes."""
    from trainer.training.progress import CheckpointEvent, SampleEvent

    if isinstance(event, SampleEvent):
        from trainer.training.likeness import read_score

        scores = [read_score(p) for p in event.paths]
        return SampleTaken(event.step, event.total, tuple(event.prompts), tuple(p.read_bytes() for p in event.paths),
                           tuple(score for _, score in scores) if all(scored for scored, _ in scores) else ())
    if isinstance(event, CheckpointEvent):
        adapter = event.adapter.read_bytes() if event.adapter else None
        return CheckpointSaved(event.step, event.total, event.path.read_bytes(), adapter)
    return event  # Phase and Step are the contract's already


class _Run:
    """One training job inside a TrainerWorker: its events, waiting to be collected."""

    def __init__(self, job_id: int, changed: threading.Condition):
        from trainer.training.progress import CancelToken

        self.job_id = job_id
        self.status = RunStatus.RUNNING
        self.error: str | None = None
        self.token = CancelToken()
        self.events: list[tuple[int, Event]] = []
        self._seq = 0
        self._changed = changed

    def add(self, event: Event) -> None:
        from contract import Step

        with self._changed:
            # Step events are replaced, not piled up: only the newest matters to a reader.
            if isinstance(event, Step) and self.events and isinstance(self.events[-1][1], Step):
                self.events.pop()
            self._seq += 1
            self.events.append((self._seq, event))
            self._changed.notify_all()

    def end(self, status: RunStatus, error: str | None = None) -> None:
        with self._changed:
            self.status, self.error = status, error
            self._changed.notify_all()


@ray.remote(num_cpus=0, max_concurrency=8, max_restarts=-1, max_task_retries=0)  # type: ignore[call-overload]
class TrainerWorker:
    """Trains one adapter at a time; keeps a base pipeline loaded between jobs."""

    def __init__(self, offload_between_jobs: bool = False):
        share_cpu_politely()
        quiet_library_warnings()
        self.scratch = own_scratch()
        self.offload_between_jobs = offload_between_jobs
        self._changed = threading.Condition()
        self._run: _Run | None = None
        self._pipelines: dict[str, object] = {}

    def where(self) -> dict:
        return location()

    def configure(self, offload_between_jobs: bool) -> None:
        """Whether to move the base model off the GPU after each job (when it must yield the card)."""
        self.offload_between_jobs = offload_between_jobs

    def current(self) -> tuple[int, RunStatus] | None:
        run = self._run
        return (run.job_id, run.status) if run else None

    def start(self, job_id: int, request: TrainRequest, files: TrainingFiles) -> bool:
        """Begin a job in the background. Starting the job already running is a no-op; another is refused."""
        with self._changed:
            if self._run is not None and self._run.status is RunStatus.RUNNING:
                return self._run.job_id == job_id
            self._run = _Run(job_id, self._changed)
        threading.Thread(target=self._train, args=(self._run, request, files), daemon=True).start()
        return True

    def poll(self, job_id: int, after: int, timeout: float = 1.0) -> Report | None:
        """Events after `after` (those up to it are dropped: they were received), and the status.

        Waits up to `timeout` for something new. None: this worker has no such job.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            run = self._run
            if run is None or run.job_id != job_id:
                return None
            run.events = [(seq, e) for seq, e in run.events if seq > after]
            while not run.events and run.status is RunStatus.RUNNING and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            return Report(run.status, tuple(run.events), run.error)

    def cancel(self, job_id: int) -> None:
        run = self._run
        if run is not None and run.job_id == job_id:
            run.token.cancel()

    def pause(self, job_id: int) -> None:
        """Checkpoint at the next step boundary and stop, so pictures can have the GPU."""
        run = self._run
        if run is not None and run.job_id == job_id:
            run.token.pause()

    def release(self, job_id: int) -> None:
        """Forget a finished job once its events are safely received."""
        with self._changed:
            if self._run is not None and self._run.job_id == job_id and self._run.status is not RunStatus.RUNNING:
                self._run = None

    def _pipeline(self, base: Any) -> Any:
        from trainer.models.base_model import load_pipeline, pick_device, pick_dtype

        if base.location not in self._pipelines:
            self._pipelines.clear()  # one base at a time: two FLUX.1-dev copies do not fit
            self._pipelines[base.location] = load_pipeline(base, pick_dtype(pick_device()))
        return self._pipelines[base.location]

    def _train(self, run: _Run, request: TrainRequest, files: TrainingFiles) -> None:
        from trainer.errors import TrainingCancelled, TrainingPaused
        from trainer.models.base_model import resolve_base
        from trainer.training.config import TrainConfig
        from trainer.training.lora_file import read_facts
        from trainer.training.train import train_lora

        pipe = None
        try:
            with tempfile.TemporaryDirectory(prefix="train-", dir=self.scratch) as scratch_dir:
                scratch = Path(scratch_dir)
                images = scratch / "photos"
                images.mkdir()
                for name, data in files.photos.items():
                    (images / Path(name).name).write_bytes(data)
                layout = RunLayout(scratch / "out")
                layout.samples.mkdir(parents=True)
                for name, data in files.samples.items():  # earlier attempts': the timeline shows the whole run
                    (layout.samples / Path(name).name).write_bytes(data)
                resume = start_from = None
                if files.checkpoint is not None:
                    resume = scratch / "resume.ckpt"
                    resume.write_bytes(files.checkpoint)
                if files.start is not None:
                    name, data = files.start
                    start_from = scratch / ("start" + Path(name).suffix)
                    start_from.write_bytes(data)
                config = TrainConfig(request, images=images, out=layout.root, resume=resume, start_from=start_from)

                def on_event(event: Any) -> None:
                    from trainer.training.progress import CheckpointEvent

                    run.add(_to_wire(event))
                    if isinstance(event, CheckpointEvent):
                        for older in event.path.parent.iterdir():
                            if older.is_file() and older not in (event.path, event.adapter):
                                older.unlink()  # the bot has it now; keep the worker's disk small

                base = resolve_base(request.base)
                pipe = self._pipeline(base)
                try:
                    result = train_lora(config, on_event=on_event, cancel=run.token, pipeline=pipe, base=base)
                except TrainingPaused as paused:
                    run.end(RunStatus.PAUSED)
                    log.info("job %s paused after step %s", run.job_id, paused.step)
                    return
                except TrainingCancelled:
                    run.end(RunStatus.CANCELLED)
                    return
                timeline = result.timeline.read_bytes() if result.timeline else None
                run.add(TrainingDone(result.lora_path.read_bytes(), read_facts(result.lora_path), timeline,
                                     tuple(result.timeline_steps), result.likeness, result.recommended))
                run.end(RunStatus.SUCCEEDED)
        except Exception as exc:  # the job fails; the worker lives on for the next one
            log.exception("training job %s failed", run.job_id)
            run.end(RunStatus.FAILED, describe_failure(exc, "training"))
        finally:
            if pipe is not None and self.offload_between_jobs:
                _offload(pipe)


@ray.remote(num_cpus=0, max_concurrency=1, max_restarts=-1, max_task_retries=0)  # type: ignore[call-overload]
class GeneratorWorker:
    """A resident Flux pipeline answering picture requests, one at a time.

    The base model comes with each request; the pipeline is loaded at the first request for
    it and kept (a request for another base replaces it). The other settings are how it runs.
    """

    def __init__(self, max_adapters: int, hotswap: bool, compile: bool = False, fp8: bool = False,
                 offload: bool | str = False, preload: str | None = None):
        """`preload`: a base to load now, so the first picture does not wait for it."""
        share_cpu_politely()
        quiet_library_warnings()
        self.scratch = own_scratch()
        self.generator_options: dict[str, Any] = {
            "max_adapters": max_adapters, "hotswap": hotswap, "compile": compile, "fp8": fp8, "offload": offload,
        }
        self.generator: Any = None
        self.base: str | None = None
        self.adapter_dir = self.scratch / "adapters"
        self.adapter_dir.mkdir()
        self._files: dict[str, Path] = {}  # adapter name -> its file here (the newest identity seen)
        self.offloaded = False
        if preload:
            self._generator_for(preload)

    def where(self) -> dict:
        return location()

    def offload(self) -> None:
        """Give the GPU's memory back (to a training run) until the next request."""
        if self.generator is not None and not self.offloaded and not self.generator.offload:
            _offload(self.generator.pipe)  # with CPU offload it is given back already
            self.offloaded = True

    def generate(self, request: GenerateRequest, blobs: list, photos: dict[str, bytes] | None = None) -> PicturesMade:
        """`blobs`: each file's bytes as an ObjectRef, in the order of `request.file_identities` (the adapters',
        fetched only when not held here, then the source picture's). `photos`: each reference photo's bytes by
        identity; kept here only while this request is drawn (they are a member's photos, and a member may take
        them back).

        With `request.compare`: one picture, the base model beside the adapters, same seed. With
        `request.group`: one picture, each face drawn with only its person's adapter.
        """
        from trainer.generation.compare import compare_pictures

        with tempfile.TemporaryDirectory(prefix="references-", dir=self.scratch) as scratch:
            try:
                generator = self._generator_for(request.base)
                files = {
                    a.identity: self._adapter_file(a.name, a.identity, ref)
                    for a, ref in zip(request.adapters, blobs[: len(request.adapters)], strict=True)
                }
                source = _source_picture(request, blobs[len(request.adapters):])
                references = {identity: atomic_write_bytes(Path(scratch) / identity, data)
                              for identity, data in (photos or {}).items()}
                if self.offloaded:
                    generator.pipe.to(generator.device)
                    self.offloaded = False
                if request.compare:
                    images = [compare_pictures(generator, request, files, reference_files=references)]
                elif request.group is not None:
                    from trainer.generation.group import draw_group

                    # its PNG says who is where
                    images = [draw_group(generator, request, files, reference_files=references).generated]
                else:
                    images = generator.generate(request, files, source=source, reference_files=references)
            except Exception as exc:
                log.exception("generation failed")
                return PicturesMade(loaded=self.loaded(), error=describe_failure(exc, "making the picture"))
        return PicturesMade(tuple(Picture(i.seed, i.png()) for i in images), self.loaded())

    def loaded(self) -> tuple[str, ...]:
        return tuple(self.generator.loaded_adapters) if self.generator is not None else ()

    def forget(self, name: str) -> None:
        """A member deleted their adapter: unload it and delete the copy here."""
        if self.generator is not None:
            self.generator.forget(name)
        path = self._files.pop(name, None)
        if path is not None:
            path.unlink(missing_ok=True)
        sweep()  # and any copy a dead worker on this machine left

    def _generator_for(self, base: str) -> Any:
        from trainer.generation.generator import Generator

        if self.generator is None or self.base != base:
            if self.generator is not None:
                _offload(self.generator.pipe)
                self.generator = None
            self.generator = Generator(base, **self.generator_options)
            self.base = base
            if self.generator_options["compile"]:
                log.info("generator warmed up in %.1f s", self.generator.warm_up())
        return self.generator

    def _adapter_file(self, name: str, identity: str, blob: Any) -> Path:
        """The adapter's file here, named by its identity. One file per member: a newer identity replaces it."""
        path = self.adapter_dir / f"{identity}.safetensors"
        if not path.exists():
            atomic_write_bytes(path, ray.get(blob))
        older = self._files.get(name)
        if older is not None and older != path:
            older.unlink(missing_ok=True)
        self._files[name] = path
        return path
