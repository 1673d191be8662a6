"""Files in, files out: what a job needs read from the data folder, and what it made written into its run's layout.

Blocking file work happens in threads; nothing here knows Ray or Discord.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from bot.jobs import files
from bot.jobs.models import Job, PicturesResult, SavedPicture, TrainingResult
from contract import (
    CaptionsWritten,
    CheckpointSaved,
    JobKind,
    JobState,
    PicturesMade,
    RunLayout,
    SampleTaken,
    TrainingDone,
    TrainingFiles,
)


class ArtifactSink:
    def __init__(self, jobs_dir: Path):
        self.jobs_dir = jobs_dir

    def layout(self, job_id: int) -> RunLayout:
        return RunLayout.of_job(self.jobs_dir, job_id)

    async def remove(self, job_id: int) -> None:
        """The run's folder and everything in it (its job was forgotten)."""
        await asyncio.to_thread(shutil.rmtree, self.layout(job_id).root, True)

    async def tidy(self, job: Job) -> None:
        """A training that ended keeps no copy of its photos, and, unless it succeeded, no checkpoints."""
        if job.kind is JobKind.TRAIN:
            snapshot = job.notes.images_dir if job.notes.snapshot else None
            await asyncio.to_thread(files.tidy_ended_training, self.layout(job.id), snapshot,
                                    keep_checkpoints=job.state is JobState.SUCCEEDED)

    # ---- in ---------------------------------------------------------------------------------

    async def training_files(self, job_id: int, images_dir: str, checkpoint: str | None,
                             start_from: str | None) -> TrainingFiles:
        """The photos, the job's newest checkpoint, what it builds on (before it has a checkpoint of its own),
        and its samples so far. Raises files.MissingInput, for the member."""

        def read() -> TrainingFiles:
            start = files.read_start(start_from) if start_from and checkpoint is None else None
            samples = {p.name: p.read_bytes() for p in self.layout(job_id).all_samples()}
            return TrainingFiles(files.read_photos(images_dir), files.read_bytes(checkpoint), start, samples)

        return await asyncio.to_thread(read)

    # ---- out --------------------------------------------------------------------------------

    async def captions(self, images_dir: str, event: CaptionsWritten) -> None:
        """Captions a worker wrote, beside their photos in a run's copy, where the copy has none."""

        def write() -> None:
            for name, caption in event.captions.items():
                path = (Path(images_dir) / Path(name).name).with_suffix(".txt")
                if not path.is_file() or not path.read_text(encoding="utf-8", errors="replace").strip():
                    files.write(path, caption.encode("utf-8"))

        await asyncio.to_thread(write)

    async def checkpoint(self, job_id: int, event: CheckpointSaved) -> Path:
        layout = self.layout(job_id)
        path = await asyncio.to_thread(files.write, layout.checkpoint(event.step), event.state)
        if event.adapter is not None:
            await asyncio.to_thread(files.write, layout.step_adapter(event.step), event.adapter)
        return path

    async def samples(self, job_id: int, event: SampleTaken) -> tuple[str, ...]:
        layout = self.layout(job_id)
        paths = []
        for index, png in enumerate(event.images):
            paths.append(str(await asyncio.to_thread(files.write, layout.sample(event.step, index), png)))
        return tuple(paths)

    async def training_done(self, job_id: int, done: TrainingDone) -> TrainingResult:
        layout = self.layout(job_id)
        steps = int(done.facts.get("steps", 0))

        def write() -> TrainingResult:
            adapter = files.write(layout.adapter, done.adapter)
            timeline = files.write(layout.timeline, done.timeline) if done.timeline else None
            # The timeline's columns after the first (that is where the run started), where its adapter was kept.
            choices = tuple(s for s in done.timeline_steps[1:] if layout.step_adapter(s).is_file())
            recommended = done.recommended if done.recommended in choices else None
            return TrainingResult(
                adapter=str(adapter),
                facts=done.facts,
                samples=tuple(map(str, layout.all_samples())),
                timeline=str(timeline) if timeline else None,
                choices=choices,
                state=str(layout.checkpoint(steps)),
                recommended=recommended,
            )

        return await asyncio.to_thread(write)

    async def pictures(self, job_id: int, made: PicturesMade) -> PicturesResult:
        layout = self.layout(job_id)
        saved = []
        for picture in made.pictures:
            path = await asyncio.to_thread(files.write, layout.picture(picture.seed), picture.png)
            saved.append(SavedPicture(picture.seed, str(path)))
        return PicturesResult(tuple(saved))
