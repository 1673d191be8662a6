"""What a training run is asked to do. Small and explicit, like peft's configs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from contract import RequestError, TrainRequest, limits
from trainer.errors import ConfigError

DEFAULT_SAMPLE_PROMPTS = (
    "photo of [trigger], portrait, natural light",
    "[trigger] as an astronaut on the moon, digital art",
)

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """A run as the trainer sees it: the shared fields of a `TrainRequest` (checked by it), plus the
    trainer's own knobs and where the run's files are."""

    base: str
    images: Path
    token: str
    out: Path
    steps: int = 1000
    rank: int = 16
    alpha: int | None = None  # None: equal to rank, so the LoRA's scale is 1
    lr: float = 1e-4
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    batch_size: int = 1
    resolution: int | None = None  # None: the base model's (512 for Flux, 64 for the tiny models)
    seed: int = 0
    caption_dropout: float = 0.05
    # Empty: the base family's (`Family.lora_targets`). Every adapter of a family trains the same modules at
    # the same rank, so one compiled pipeline can hotswap between them.
    target_modules: tuple[str, ...] = ()
    guidance: float = 1.0  # dev's guidance embedding during training, as ai-toolkit
    max_grad_norm: float = 1.0
    # How lean the frozen base is (trainer/models/memory.py): None takes the MEMORY_MODE setting,
    # whose default "auto" lets the planner choose from the GPU's memory and the resolution.
    # A request always names its mode, so a worker's own settings never decide it.
    memory_mode: str | None = None
    gradient_checkpointing: bool | None = None  # None: as the memory plan says
    eight_bit_adam: bool | None = None  # None: as the memory plan says (bitsandbytes on CUDA)
    checkpoint_every: int | None = None  # None: a quarter of the run (`TrainRequest.checkpoint_interval`)
    sample_every: int | None = None  # None: a quarter of the run; 0: no samples
    sample_prompts: tuple[str, ...] = DEFAULT_SAMPLE_PROMPTS
    sample_seed: int = 42
    caption_model: str = ""  # writes captions for photos without one first ('' writes none): trainer/captioning.py
    resume: Path | None = None  # a checkpoint of this run, to continue it exactly
    # An earlier adapter (its checkpoint, or its .safetensors file) to build on: this run's `steps`
    # are added to its steps. How "train more" and retraining after adding photos avoid starting from zero.
    # Not needed with `resume`: the run's checkpoint already holds what it started from.
    start_from: Path | None = None
    device: str | None = None  # None: CUDA when there is one
    time_steps: bool = False  # synchronise around the model to time it (benchmarks)

    def __post_init__(self):
        self.images, self.out = Path(self.images), Path(self.out)
        self.resume = Path(self.resume) if self.resume else None
        self.start_from = Path(self.start_from) if self.start_from else None
        self.target_modules = tuple(self.target_modules)
        self.sample_prompts = tuple(self.sample_prompts)
        if self.alpha is None:
            self.alpha = self.rank
        self.validate()

    @classmethod
    def from_request(
        cls,
        request: TrainRequest,
        *,
        images: Path,
        out: Path,
        resume: Path | None = None,
        start_from: Path | None = None,
    ) -> TrainConfig:
        """The run a request asks for, with the photos and the run's folder where this worker keeps them."""
        return cls(**asdict(request), images=images, out=out, resume=resume, start_from=start_from)

    @property
    def request(self) -> TrainRequest:
        """The shared part of this run, as the bot would ask for it; a mode left to MEMORY_MODE is resolved."""
        from trainer.settings import trainer_settings

        return self._request(self.memory_mode or trainer_settings().memory_mode)

    def _request(self, memory_mode: str) -> TrainRequest:
        shared = {f.name: getattr(self, f.name) for f in fields(TrainRequest)}
        try:
            return TrainRequest(**shared | {"memory_mode": memory_mode})
        except RequestError as exc:
            raise ConfigError(str(exc)) from None

    def validate(self) -> None:
        problems: list[str | None] = []
        try:
            # The shared fields are checked as the bot's requests are; "auto" stands in for a
            # mode left to the setting, which is checked where it is read.
            self._request(self.memory_mode or "auto")
        except ConfigError as exc:
            problems.append(str(exc))
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"the learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}")
        problems.append(limits.BATCH_SIZE.problem("batch size", self.batch_size))
        if not 0 <= self.caption_dropout < 1:
            problems.append("caption dropout must be at least 0 and below 1")
        if self.warmup_steps < 0:
            problems.append(f"warm-up steps must be at least 0, not {self.warmup_steps}")
        stated = [p for p in problems if p]
        if stated:
            raise ConfigError("; ".join(stated))

    def sample_prompts_for_token(self) -> list[str]:
        from trainer.training.dataset import caption_with_token

        return [caption_with_token(prompt, self.token) for prompt in self.sample_prompts]

    def to_record(self) -> dict:
        """The settings that decide the adapter's weights, for checkpoints to be checked against."""
        record = asdict(self)
        # Where things are and how often to look at them do not change the adapter. Nor does how
        # the memory is saved: a paused run may resume on another card, whose plan differs. The
        # LoRA and its optimizer state carry over; only the base's rounding (fp8, nf4) changes.
        for key in ("images", "out", "resume", "start_from", "device", "time_steps", "checkpoint_every", "sample_every",
                    "sample_prompts", "sample_seed", "memory_mode", "gradient_checkpointing", "eight_bit_adam",
                    "caption_model"):  # the captions it wrote are in the data's SHA-256
            record.pop(key)
        record["target_modules"] = list(self.target_modules)
        return record
