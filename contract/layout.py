"""Where a run's files live and what they are called: the trainer writes them so, the bot stores them so."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# diffusers' name for a LoRA file (`FluxPipeline.save_lora_weights`): tools that load a folder look for it.
ADAPTER_FILENAME = "pytorch_lora_weights.safetensors"
# Beside a training's photos: what the bot's face checks saw in each, by file name (faces.verdict.Look's data),
# so a trainer looks again only at the photos it was not told about.
LOOKS_FILENAME = "doppel-looks.json"
_SAMPLE_NAME = re.compile(r"^step-(\d{6})-(\d+)\.png$")


@dataclass(frozen=True)
class RunLayout:
    """One training run's folder: its adapter, checkpoints, step adapters, samples and timeline."""

    root: Path

    @classmethod
    def of_job(cls, jobs_dir: Path, job_id: int) -> RunLayout:
        return cls(Path(jobs_dir) / f"{job_id:08d}")

    @property
    def adapter(self) -> Path:
        return self.root / ADAPTER_FILENAME

    @property
    def timeline(self) -> Path:
        return self.root / "timeline.png"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def checkpoint(self, step: int) -> Path:
        """Everything needed to train on from a step: LoRA, optimizer, scheduler, random state."""
        return self.checkpoints / f"step-{step:06d}.ckpt"

    def step_adapter(self, step: int) -> Path:
        """The adapter as it was at a step, ready to use, for its owner to choose."""
        return self.checkpoints / f"step-{step:06d}.safetensors"

    def sample(self, step: int, prompt_index: int) -> Path:
        return self.samples / f"step-{step:06d}-{prompt_index}.png"

    def picture(self, seed: int) -> Path:
        """A generated picture (generation jobs' folders hold only these)."""
        return self.root / f"seed-{seed}.png"

    def sample_files(self) -> dict[int, dict[int, Path]]:
        """{step: {prompt index: path}} of the samples on disk."""
        found: dict[int, dict[int, Path]] = {}
        for path in self.samples.glob("step-*.png"):
            match = _SAMPLE_NAME.match(path.name)
            if match:
                found.setdefault(int(match[1]), {})[int(match[2])] = path
        return found

    def all_samples(self) -> list[Path]:
        return sorted(path for by_prompt in self.sample_files().values() for path in by_prompt.values())
