"""What an adapter learns: a person's likeness or a team's style. Said once, for the bot and the trainer.

A person's adapter learns one member's face from photos of them; its captions leave their looks out, its
samples are scored for likeness, and it is drawn as that person. A style adapter learns a server's design
language from pictures without people (logos, illustrations, product shots); its captions describe the
content and leave the style out, so the token carries the style; no face is checked or scored, and it is
drawn under a picture, never as someone. The subject is written into the adapter's header
(`doppel.subject`), and a worker checks it where the adapter is used: a style is never drawn as a face, nor a
person as a style.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Subject = Literal["person", "style"]
PERSON: Subject = "person"
STYLE: Subject = "style"
SUBJECTS: tuple[Subject, ...] = (PERSON, STYLE)
FACT_KEY = "subject"  # doppel's header entry (after `contract.models.FACTS_PREFIX`); absent: a person's


@dataclass(frozen=True)
class TrainingDefaults:
    """A subject's training defaults, where a request does not say. The README's "Styles" says their sources."""

    steps: int
    rank: int
    lr: float


DEFAULTS: dict[str, TrainingDefaults] = {
    PERSON: TrainingDefaults(steps=1000, rank=16, lr=1e-4),
    # ai-toolkit's FLUX.1 example (train_lora_flux_24gb.yaml): 2000 steps at 1e-4, rank 16. The rank is also every
    # adapter's (hotswapping pads to one rank), so a style must not ask for more.
    STYLE: TrainingDefaults(steps=2000, rank=16, lr=1e-4),
}


def subject_problem(subject: str) -> str | None:
    """A sentence when `subject` is not one doppel trains; None when it is."""
    if subject in SUBJECTS:
        return None
    return f"an adapter learns one of {', '.join(SUBJECTS)}, not '{subject}'"


def style_phrase(token: str) -> str:
    """How a prompt names a style, after what it draws: "a poster, in the style of BRND42". A style's captions
    leave the style out, so the token alone carries it; this is the phrase a request adds for it."""
    return f"in the style of {token}"


def subject_of(facts: dict[str, str]) -> str:
    """The subject an adapter's doppel facts record: adapters from before styles are people's."""
    return facts.get(FACT_KEY, PERSON)
