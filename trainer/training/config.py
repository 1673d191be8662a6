"""What a training run is asked to do. Small and explicit, like peft's configs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from contract import RequestError, TrainRequest, limits
from contract.subjects import PERSON, STYLE
from trainer.errors import ConfigError

# What a run's samples draw, by subject: a person in two unlike scenes; a style on two things its pictures never
# showed, so the samples tell the style from the content it was trained on.
SAMPLE_PROMPTS = {
    PERSON: ("photo of [trigger], portrait, natural light", "[trigger] as an astronaut on the moon, digital art"),
    STYLE: (
        "a poster for a summer sale, in the style of [trigger]", "a coffee mug on a desk, in the style of [trigger]",
    ),
}
DEFAULT_SAMPLE_PROMPTS = SAMPLE_PROMPTS[PERSON]

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """A run as the trainer sees it: the request (what decides the work, checked by it), plus the trainer's
    own knobs and where the run's files are."""

    request: TrainRequest
    images: Path
    out: Path
    alpha: int | None = None  # None: equal to the request's rank, so the LoRA's scale is 1
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    batch_size: int = 1
    caption_dropout: float = 0.05
    # Empty: the base family's (`Family.lora_targets`). Every adapter of a family trains the same modules at
    # the same rank, so one compiled pipeline can hotswap between them.
    target_modules: tuple[str, ...] = ()
    guidance: float = 1.0  # dev's guidance embedding during training, as ai-toolkit
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool | None = None  # None: as the memory plan says
    eight_bit_adam: bool | None = None  # None: as the memory plan says (bitsandbytes on CUDA)
    sample_prompts: tuple[str, ...] = ()  # empty: the subject's (SAMPLE_PROMPTS)
    sample_seed: int = 42
    resume: Path | None = None  # a checkpoint of this run, to continue it exactly
    # An earlier adapter (its checkpoint, or its .safetensors file) to build on: this run's `steps`
    # are added to its steps. How "train more" and retraining after adding photos avoid starting from zero.
    # Not needed with `resume`: the run's checkpoint already holds what it started from.
    start_from: Path | None = None
    device: str | None = None  # None: CUDA when there is one
    time_steps: bool = False  # synchronise around the model to time it (benchmarks)
    # Leave out the photos the face checks doubt, as the bot does (the command line); the bot's own runs are
    # sent only the photos it trains, those its member kept included.
    leave_out_doubtful: bool = False

    def __post_init__(self):
        self.images, self.out = Path(self.images), Path(self.out)
        self.resume = Path(self.resume) if self.resume else None
        self.start_from = Path(self.start_from) if self.start_from else None
        self.target_modules = tuple(self.target_modules)
        self.sample_prompts = tuple(self.sample_prompts) or SAMPLE_PROMPTS[self.request.subject]
        if self.alpha is None:
            self.alpha = self.request.rank
        problems = _knob_problems(self.lr_schedule, self.batch_size, self.caption_dropout, self.warmup_steps)
        if problems:
            raise ConfigError("; ".join(problems))

    @classmethod
    def from_options(cls, **options: Any) -> TrainConfig:
        """A run from one flat set of options (the command line's, a test's): the request's fields make the
        request, the rest are the trainer's; every problem with either is said at once."""
        shared = {f.name for f in fields(TrainRequest)}
        problems: list[str] = []
        try:
            request = TrainRequest(**{k: v for k, v in options.items() if k in shared})
        except RequestError as exc:
            problems.append(str(exc))
        own = {k: v for k, v in options.items() if k not in shared}
        checked = {f.name: own.get(f.name, f.default) for f in fields(cls) if f.name in _CHECKED_KNOBS}
        problems += _knob_problems(**checked)
        if problems:
            raise ConfigError("; ".join(problems))
        return cls(request, **own)

    def sample_prompts_for_token(self) -> list[str]:
        from trainer.training.dataset import caption_with_token

        return [caption_with_token(prompt, self.request.token, self.request.subject) for prompt in self.sample_prompts]

    def to_record(self) -> dict:
        """The settings that decide the adapter's weights, for checkpoints to be checked against."""
        record = asdict(self.request) | {f.name: getattr(self, f.name) for f in fields(self) if f.name != "request"}
        # Where things are and how often to look at them do not change the adapter. Nor does how
        # the memory is saved: a paused run may resume on another card, whose plan differs. The
        # LoRA and its optimizer state carry over; only the base's rounding (fp8, nf4) changes.
        for key in ("images", "out", "resume", "start_from", "device", "time_steps", "checkpoint_every", "sample_every",
                    "sample_prompts", "sample_seed", "memory_mode", "gradient_checkpointing", "eight_bit_adam",
                    # The captions it wrote, and the photos it left out, are in the data's SHA-256.
                    "caption_model", "leave_out_doubtful"):
            record.pop(key)
        record["target_modules"] = list(self.target_modules)
        return record


_CHECKED_KNOBS = ("lr_schedule", "batch_size", "caption_dropout", "warmup_steps")


def _knob_problems(lr_schedule: str, batch_size: int, caption_dropout: float, warmup_steps: int) -> list[str]:
    problems: list[str | None] = []
    if lr_schedule not in LR_SCHEDULES:
        problems.append(f"the learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}")
    problems.append(limits.BATCH_SIZE.problem("batch size", batch_size))
    if not 0 <= caption_dropout < 1:
        problems.append("caption dropout must be at least 0 and below 1")
    if warmup_steps < 0:
        problems.append(f"warm-up steps must be at least 0, not {warmup_steps}")
    return [p for p in problems if p]
