"""What a training run is asked to do. Small and explicit, like peft's configs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from trainer.errors import DoppelError

# diffusers' examples/dreambooth/train_dreambooth_lora_flux.py. Every adapter uses
# the same modules and rank, so one compiled pipeline can hotswap between them.
FLUX_LORA_TARGETS = (
    "attn.to_k",
    "attn.to_q",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_k_proj",
    "attn.add_q_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)

DEFAULT_SAMPLE_PROMPTS = (
    "photo of [trigger], portrait, natural light",
    "[trigger] as an astronaut on the moon, digital art",
)

LR_SCHEDULES = ("constant", "cosine")
MAX_STEPS = 10_000
MAX_RESOLUTION = 2048


@dataclass
class TrainConfig:
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
    resolution: int | None = None  # None: the base model's (512 for Flux, 64 for tiny)
    seed: int = 0
    caption_dropout: float = 0.05
    target_modules: tuple[str, ...] = FLUX_LORA_TARGETS
    guidance: float = 1.0  # dev's guidance embedding during training, as ai-toolkit
    max_grad_norm: float = 1.0
    # How lean the frozen base is (trainer/memory.py): None takes the MEMORY_MODE setting,
    # whose default "auto" lets the planner choose from the GPU's memory and the resolution.
    memory_mode: str | None = None
    gradient_checkpointing: bool | None = None  # None: as the memory plan says
    eight_bit_adam: bool | None = None  # None: as the memory plan says (bitsandbytes on CUDA)
    checkpoint_every: int = 250
    sample_every: int = 250  # 0: no samples
    sample_prompts: tuple[str, ...] = DEFAULT_SAMPLE_PROMPTS
    sample_seed: int = 42
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

    def validate(self) -> None:
        problems = []
        if not self.token or not self.token.isalnum():
            problems.append(f"the token must be letters and digits, not '{self.token}'")
        if not 1 <= self.steps <= MAX_STEPS:
            problems.append(f"steps must be between 1 and {MAX_STEPS}, not {self.steps}")
        if not 1 <= self.rank <= 256:
            problems.append(f"rank must be between 1 and 256, not {self.rank}")
        if not 0 < self.lr <= 1:
            problems.append(f"the learning rate must be above 0 and at most 1, not {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"the learning-rate schedule must be one of {', '.join(LR_SCHEDULES)}")
        if not 1 <= self.batch_size <= 16:
            problems.append(f"batch size must be between 1 and 16, not {self.batch_size}")
        if self.resolution is not None and (
            self.resolution % 16 or not 16 <= self.resolution <= MAX_RESOLUTION
        ):
            problems.append(f"resolution must be a multiple of 16 from 16 to {MAX_RESOLUTION}, not {self.resolution}")
        if not 0 <= self.caption_dropout < 1:
            problems.append("caption dropout must be at least 0 and below 1")
        from trainer.memory import OVERRIDES

        if self.memory_mode not in (None, *OVERRIDES):
            problems.append(f"memory mode must be one of {', '.join(OVERRIDES)}, not '{self.memory_mode}'")
        if self.checkpoint_every < 1 or self.sample_every < 0 or self.warmup_steps < 0:
            problems.append("checkpoint and sample intervals must be positive, warm-up at least 0")
        if problems:
            raise DoppelError("; ".join(problems))

    def sample_prompts_for_token(self) -> list[str]:
        from trainer.dataset import caption_with_token

        return [caption_with_token(prompt, self.token) for prompt in self.sample_prompts]

    def to_record(self) -> dict:
        """The settings that decide the adapter's weights, for checkpoints to be checked against."""
        record = asdict(self)
        # Where things are and how often to look at them do not change the adapter. Nor does how
        # the memory is saved: a paused run may resume on another card, whose plan differs. The
        # LoRA and its optimizer state carry over; only the base's rounding (fp8, nf4) changes.
        for key in ("images", "out", "resume", "start_from", "device", "time_steps", "checkpoint_every", "sample_every",
                    "sample_prompts", "sample_seed", "memory_mode", "gradient_checkpointing", "eight_bit_adam"):
            record.pop(key)
        record["target_modules"] = list(self.target_modules)
        return record
