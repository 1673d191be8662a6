"""What the bot asks a GPU worker to do: frozen, self-validating, and serialised in one place.

A request carries everything that decides the work (the base model and the memory
mode included), so a worker on another machine with another `.env` does the same
thing. What a worker's own environment decides is only where it runs: its devices
and its caches. Files (photos, checkpoints, adapters) travel beside a request as
bytes; a request names adapters by their content, never by a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from contract import limits
from contract.subjects import PERSON, STYLE, subject_problem

if TYPE_CHECKING:
    from contract.group import GroupPlan

MEMORY_MODES = ("auto", "fp32", "bf16", "fp8", "nf4")  # how lean the frozen base is kept while training


class RequestError(ValueError):
    """A request that cannot be served, said for a person: every problem in one sentence."""


def adapter_identity(data: bytes) -> str:
    """An adapter's identity: its content. A retrained, re-chosen or forgotten-and-new adapter is another one."""
    return hashlib.sha256(data).hexdigest()


# A source picture and a reference photo are named by their content too, and travel as adapters do.
picture_identity = adapter_identity
reference_identity = adapter_identity  # as a member's stored photo records it (`Photo.sha256`)


class _Wire:
    """Plain data (JSON-safe: the job record keeps it) to and from a frozen dataclass, in one place."""

    def to_data(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Self:
        """Build from plain data; keys that are not fields (the bot's own bookkeeping) are left aside."""
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class TrainRequest(_Wire):
    """Train a member's adapter. `steps` are this run's; building on an adapter adds them to its steps."""

    base: str
    token: str
    steps: int = 1000
    rank: int = 16
    lr: float = 1e-4
    resolution: int | None = None  # None: the base model's training resolution
    seed: int = 0
    memory_mode: str = "auto"
    # None: a quarter of the run, so every run shows five moments (its start and four more).
    checkpoint_every: int | None = None
    sample_every: int | None = None  # 0: no samples
    # Florence-2 (Hub id, folder, or 'tiny') that writes captions for photos without one; '' writes none.
    caption_model: str = ""
    # What the adapter learns (`contract.subjects`): a person's face from photos of them, or a style from
    # pictures without people (no face checks, no likeness score, captions of the content).
    subject: str = PERSON

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise RequestError("; ".join(problems))

    def problems(self) -> list[str]:
        found = [
            limits.STEPS.problem("steps", self.steps),
            limits.RANK.problem("rank", self.rank),
            limits.LEARNING_RATE.problem("the learning rate", self.lr),
            limits.TRAIN_SEED.problem("the seed", self.seed),
            None if self.resolution is None else limits.RESOLUTION.problem("resolution", self.resolution),
            subject_problem(self.subject),
        ]
        if not self.token or not self.token.isalnum():
            found.append(f"the token must be letters and digits, not '{self.token}'")
        if not self.base:
            found.append("the base model is not named")
        if self.memory_mode not in MEMORY_MODES:
            found.append(f"memory mode must be one of {', '.join(MEMORY_MODES)}, not '{self.memory_mode}'")
        if (self.checkpoint_every is not None and self.checkpoint_every < 1) or (
            self.sample_every is not None and self.sample_every < 0
        ):
            found.append("checkpoint and sample intervals must be positive")
        return [p for p in found if p]

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or quarter(self.steps)

    @property
    def sample_interval(self) -> int:
        return quarter(self.steps) if self.sample_every is None else self.sample_every

    def checkpoint_due(self, done: int) -> bool:
        """Whether the run keeps a checkpoint after `done` of its steps (the last one it keeps anyway)."""
        return _due(done, self.steps, self.checkpoint_every)

    def sample_due(self, done: int) -> bool:
        """Whether the run draws its samples after `done` of its steps (when it draws any)."""
        return _due(done, self.steps, self.sample_every)


@dataclass(frozen=True)
class TrainingFiles:
    """The files a training run needs, as bytes: a worker shares no disk with the bot."""

    photos: dict[str, bytes]  # file name -> bytes: the images and their .txt captions
    checkpoint: bytes | None = None  # this job's newest checkpoint: the run resumes exactly there
    # An earlier adapter (.safetensors) or checkpoint (.ckpt) to build on, as (file name, bytes). Only
    # before the job's first checkpoint: that checkpoint holds what the run started from.
    start: tuple[str, bytes] | None = None
    samples: dict[str, bytes] = field(default_factory=dict)  # an interrupted run's samples, for its timeline


def quarter(steps: int) -> int:
    """A quarter of a run: about how often it is sampled and checkpointed unless told otherwise."""
    return max(1, steps // 4)


def quarters(steps: int) -> set[int]:
    """The steps done at 25, 50, 75 and 100 % of a run, rounded half up: where it is sampled and checkpointed
    unless told otherwise, so that its timeline and its "Use step" buttons show those points (3, 5, 8, 10 of
    10 steps; every 2 steps would have shown 2, 4, 8)."""
    return {max(1, (k * steps + 2) // 4) for k in (1, 2, 3, 4)}


def _due(done: int, steps: int, every: int | None) -> bool:
    return done % every == 0 if every else done in quarters(steps)


@dataclass(frozen=True)
class AdapterRef(_Wire):
    """One adapter in a picture: whose (`name`, the generator's cache key), which (`identity`), how strongly,
    and what it is (`subject`: a person's, drawn as them; a style, drawn over the whole picture). The worker
    holds the subject to the adapter file's own."""

    name: str
    identity: str
    weight: float = 1.0
    subject: str = PERSON

    @property
    def is_style(self) -> bool:
        return self.subject == STYLE


@dataclass(frozen=True)
class SourcePicture(_Wire):
    """A picture to draw from (image-to-image), named by its content (`identity`; its bytes travel beside the
    request as an adapter's do): `strength` how far from it (1 ignores it), `scale` how much larger the sides
    of the request's size are drawn (2: an upscale; the base's largest side caps it)."""

    identity: str
    strength: float
    scale: int = 1

    def problems(self) -> list[str]:
        found = [
            limits.REDRAW_STRENGTH.problem("the strength of a redraw", self.strength),
            limits.REDRAW_SCALE.problem("the scale of a redraw", self.scale),
        ]
        if not self.identity:
            found.append("the picture to draw from is not named")
        return [p for p in found if p]


@dataclass(frozen=True)
class ReferenceRef(_Wire):
    """One reference photo a picture is drawn from: whose (`name`, as an adapter's) and which (`identity`, the
    SHA-256 of its bytes). Like an adapter, it travels as a file beside the request, never as a path."""

    name: str
    identity: str


@dataclass(frozen=True)
class GenerateRequest(_Wire):
    """Pictures from the base model with some members' adapters. `compare`: one picture, the base model beside them."""

    base: str
    prompt: str
    adapters: tuple[AdapterRef, ...] = ()
    count: int = 1
    seed: int | None = None  # None: a random one; image k gets seed + k
    size: str = "square"
    steps: int | None = None  # None: the base model's default
    compare: bool = False
    guidance: float | None = field(default=None)
    group: GroupPlan | None = None  # several people: each face drawn with only its person's adapter
    source: SourcePicture | None = None  # drawn from this picture (a variation, an upscale)
    # Photos the picture is drawn from (a family with reference images only): a person's by their name, so a
    # group's face redraw gets only its own person's.
    references: tuple[ReferenceRef, ...] = ()
    # A photo to edit (base64 of its bytes, as GroupPlan.photo): the picture is this photo changed as the prompt
    # says, with the one person drawn from their reference photos (a family with reference images only).
    edit_photo: str | None = None

    def __post_init__(self) -> None:
        from contract.group import GroupPlan

        adapters = tuple(a if isinstance(a, AdapterRef) else AdapterRef.from_data(a) for a in self.adapters)
        object.__setattr__(self, "adapters", adapters)
        references = tuple(r if isinstance(r, ReferenceRef) else ReferenceRef.from_data(r) for r in self.references)
        object.__setattr__(self, "references", references)
        if isinstance(self.group, dict):
            object.__setattr__(self, "group", GroupPlan.from_data(self.group))
        if isinstance(self.source, dict):
            object.__setattr__(self, "source", SourcePicture.from_data(self.source))
        problems = self.problems()
        if problems:
            raise RequestError("; ".join(problems))

    def problems(self) -> list[str]:
        found = [
            limits.IMAGE_COUNT.problem("the number of pictures", self.count),
            None if self.seed is None else limits.SEED.problem("the seed", self.seed),
            None if self.steps is None else limits.GENERATION_STEPS.problem("steps", self.steps),
        ]
        if not self.prompt.strip():
            found.append("the prompt is empty")
        elif len(self.prompt) > limits.PROMPT_LENGTH.high:
            found.append(f"the prompt is longer than {limits.PROMPT_LENGTH.high} characters")
        if self.size not in limits.SIZES:
            found.append(f"size must be one of {', '.join(limits.SIZES)}, not '{self.size}'")
        if len(self.adapters) > limits.ADAPTERS_PER_PICTURE:
            found.append(f"a picture can use at most {limits.ADAPTERS_PER_PICTURE} adapters")
        if self.compare and not self.adapters:
            found.append("a comparison needs an adapter to compare with the base model")
        found += [limits.STRENGTH.problem("adapter strength", a.weight) for a in self.adapters]
        found += [subject_problem(a.subject) for a in self.adapters]
        if len({a.name for a in self.adapters}) != len(self.adapters):
            found.append("an adapter is given twice")
        found += self._reference_problems()
        if self.group is not None:
            found += self.group.problems(len(self.people))
            if self.count != 1 or self.compare:
                found.append("a group picture is one picture, without a comparison")
        if self.source is not None:
            found += self.source.problems()
            if self.compare or self.group is not None:
                found.append("a picture drawn from another is drawn in one pass, without a comparison")
            if self.references or self.edit_photo is not None:
                found.append("a picture drawn from another is drawn without reference photos or a photo to edit")
        return [p for p in found if p]

    @property
    def people(self) -> tuple[AdapterRef, ...]:
        """The people's adapters, in the request's order (a group plan's tokens name them in this order)."""
        return tuple(a for a in self.adapters if not a.is_style)

    @property
    def styles(self) -> tuple[AdapterRef, ...]:
        """The style adapters: drawn over the whole picture (a group's composition and each of its faces)."""
        return tuple(a for a in self.adapters if a.is_style)

    @property
    def compared_with(self) -> tuple[AdapterRef, ...]:
        """What a comparison's other half is drawn with: the people without the styles where there are styles
        ("without and with the style"), else the base model alone."""
        return self.people if self.styles else ()

    @property
    def file_identities(self) -> tuple[str, ...]:
        """The files that travel beside the request, by identity, in this order: its adapters', then its
        source picture's."""
        source = (self.source.identity,) if self.source is not None else ()
        return (*(a.identity for a in self.adapters), *source)

    def _reference_problems(self) -> list[str]:
        found: list[str | None] = []
        for name in dict.fromkeys(r.name for r in self.references):
            if sum(r.name == name for r in self.references) > limits.REFERENCES_PER_PICTURE:
                found.append(f"a person can be drawn from at most {limits.REFERENCES_PER_PICTURE} reference photos")
                break
        if len({r.identity for r in self.references}) != len(self.references):
            found.append("a reference photo is given twice")
        if self.group is None and len({r.name for r in self.references}) > 1:
            found.append("a picture of one person is drawn from that person's reference photos only")
        if self.edit_photo is not None:
            from contract.group import photo_problem

            found.append(photo_problem(self.edit_photo, "the photo to edit"))
            if self.group is not None or self.compare or self.count != 1:
                found.append("an edited photo is one picture, without a group plan or a comparison")
            elif len(self.references) >= limits.REFERENCES_PER_PICTURE:
                found.append(f"a photo is edited with at most {limits.REFERENCES_PER_PICTURE - 1} reference photos")
        return [p for p in found if p]

    def edit_photo_bytes(self) -> bytes | None:
        """The photo to edit, decoded (None: none)."""
        from contract.group import decode_photo

        return decode_photo(self.edit_photo)

    def references_of(self, name: str) -> tuple[ReferenceRef, ...]:
        """The reference photos of the person `name`, in the request's order."""
        return tuple(r for r in self.references if r.name == name)
