"""A picture in one of the server's styles (/imagine style:brand ...): the style looked up in the asker's own
server, its adapter named by its identity after the people's, and its token in the prompt.

A style is drawn over the whole picture (a group's composition and each of its faces too: the GPU side's), at
its own strength. Who may use it where the work happens is bot.members.consent's (`style_refusal`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.app import DoppelBot
from bot.exts.imagine.refused import Refused
from bot.members.owner import Owner, adapter_name
from contract import AdapterRef
from contract.limits import ADAPTERS_PER_PICTURE
from contract.subjects import STYLE, style_phrase

# Below a person's 1.0: in one pass the style's and the person's adapters add up on the same layers, and a style
# at full strength pulls a face toward the design pictures it learned (which have no faces); 0.8 keeps the look
# and leaves the likeness to the person's adapter. /imagine's style_strength sets it per picture.
DEFAULT_STRENGTH = 0.8


@dataclass(frozen=True)
class InStyle:
    """A style a picture is drawn in: its adapter as the request names it, that adapter's file, and the
    style's own rows (`owner`, as the job's notes keep it)."""

    ref: AdapterRef
    path: str
    owner: Owner
    token: str


async def named(bot: DoppelBot, guild_id: int, name: str, strength: float) -> InStyle:
    """The server's style `name` with its adapter as it is now; Refused, in words, when there is none."""
    style = await bot.styles.named(guild_id, name.strip().lower())
    if style is None:
        raise Refused(f"this server has no style called '{name}' (see /style list)")
    adapter = await bot.consent.style_usable(style)
    if isinstance(adapter, str):
        raise Refused(adapter)
    assert adapter.identity is not None  # noqa: S101  style_usable() gives only adapters whose identity is known
    ref = AdapterRef(adapter_name(style.owner), adapter.identity, strength, subject=STYLE)
    return InStyle(ref, adapter.path, style.owner, style.token)


async def kept(bot: DoppelBot, owners: Sequence[Owner], refs: Sequence[AdapterRef]) -> list[InStyle]:
    """A finished picture's styles again (a button press): each must still be the very adapter it was drawn
    with, at the same strength."""
    found = []
    for owner, ref in zip(owners, refs, strict=True):
        refusal = await bot.consent.style_refusal(owner, ref.identity)
        if refusal is not None:
            raise Refused(refusal)
        style = await bot.styles.of_owner(owner)
        adapter = await bot.members.adapter(owner)
        assert style is not None and adapter is not None  # noqa: S101  style_refusal() said both are there
        found.append(InStyle(ref, adapter.path, owner, style.token))
    return found


def prompt_in(prompt: str, styles: Sequence[InStyle]) -> str:
    """The prompt with each style's phrase after it, as the style adapters learned their tokens."""
    return ", ".join([prompt, *(style_phrase(s.token) for s in styles)])


def check_room(people: int, styles: Sequence[InStyle]) -> None:
    """Refused when the people's and the styles' adapters are more than a picture takes."""
    if styles and people + len(styles) > ADAPTERS_PER_PICTURE:
        raise Refused(f"a picture takes at most {ADAPTERS_PER_PICTURE} adapters, and this one has {people} "
                      f"{'person' if people == 1 else 'people'} and a style: name fewer people")
