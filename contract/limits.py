"""Every limit a request is held to, in one place.

The trainer validates against these, the bot's Discord options are declared
with them (`app_commands.Range[int, STEPS.low, STEPS.high]`), and the help
text quotes them. An operator may narrow some further in the bot's settings
(TRAIN_MAX_STEPS), never widen them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    multiple_of: int = 1

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high and value % self.multiple_of == 0

    def problem(self, what: str, value: int) -> str | None:
        """A sentence for a person when `value` is out of range; None when it is fine."""
        if value in self:
            return None
        if self.multiple_of > 1:
            return f"{what} must be a multiple of {self.multiple_of} from {self.low} to {self.high}, not {value}"
        return f"{what} must be between {self.low} and {self.high}, not {value}"


@dataclass(frozen=True)
class FloatRange:
    low: float
    high: float
    low_open: bool = False  # the low end itself is not allowed (a learning rate of 0)

    def __contains__(self, value: object) -> bool:
        if not isinstance(value, int | float):
            return False
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def problem(self, what: str, value: float) -> str | None:
        if value in self:
            return None
        low = "above" if self.low_open else "at least"
        return f"{what} must be {low} {self.low:g} and at most {self.high:g}, not {value:g}"


# Training
# Usable photos (of the member's face) a likeness needs: the bot's MIN_PHOTOS_TO_TRAIN default, and what
# `python -m trainer dataset check` holds a folder to.
MIN_PHOTOS_TO_TRAIN = 10
STEPS = IntRange(1, 10_000)  # per run; "train more" adds a run's steps to its adapter's
# What a member may ask for in chat: fewer steps teach nothing and still load the model. TRAIN_MAX_STEPS narrows it.
MEMBER_STEPS = IntRange(10, STEPS.high)
RESOLUTION = IntRange(64, 1024, multiple_of=16)  # 512, 768 and 1024 suit Flux; 64 is the tiny model's
RANK = IntRange(1, 256)
LEARNING_RATE = FloatRange(0.0, 1.0, low_open=True)
BATCH_SIZE = IntRange(1, 16)
TRAIN_SEED = IntRange(0, 2**63 - 1)

# Pictures
PROMPT_LENGTH = IntRange(1, 1000)
IMAGE_COUNT = IntRange(1, 4)
# Image k of a request gets seed + k: the highest seed leaves room for the last image's.
SEED = IntRange(0, 2**32 - 1 - IMAGE_COUNT.high)
GENERATION_STEPS = IntRange(1, 100)
STRENGTH = FloatRange(0.0, 1.5)  # 0: the base model; above 1 exaggerates, and soon distorts
ADAPTERS_PER_PICTURE = 4
# Reference photos a picture may be drawn from (FLUX.2 [klein] takes up to 4; a family may take fewer).
REFERENCES_PER_PICTURE = 4
# Width:height of each size a picture can have; its pixel count stays near the model's resolution squared.
SIZES: dict[str, tuple[int, int]] = {"square": (1, 1), "portrait": (3, 4), "landscape": (4, 3)}
# Image-to-image from a picture: how far from it (0 would keep it, 1 ignores it), and how much larger its sides.
REDRAW_STRENGTH = FloatRange(0.0, 1.0, low_open=True)
REDRAW_SCALE = IntRange(1, 2)

# Photos a worker receives
MAX_PHOTO_BYTES = 30 * 2**20
