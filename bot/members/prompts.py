"""Whose likeness a prompt asks for, by one predictable rule (the one /help states).

1. A mention of a member (`@ann`) or their trigger token names them; a mention is
   replaced by their token, since the token is what their adapter learned.
2. A prompt that names no one gets the requester's own token in front.
3. Every member named must have an adapter (or, on a base that takes reference photos,
   photos), and it must be the requester's own or shared with them (or with everyone).
   Otherwise the request is refused.
4. A strength written after a name (`@ann:0.7`, `THGH96:0.7`) sets how strongly that
   person's adapter acts in a group picture; the weight is taken out of the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.members.owner import Owner
from bot.members.store import MemberStore
from contract.limits import STRENGTH

MENTION = re.compile(r"<@!?(\d+)>")
WEIGHTED = re.compile(r"\b([A-Za-z0-9]+):(\d+(?:\.\d+)?|\.\d+)(?![\d.])")
MAX_WEIGHT = STRENGTH.high


class PromptRefused(Exception):
    """The prompt names someone the requester may not draw."""


@dataclass(frozen=True)
class ResolvedPrompt:
    text: str
    owners: tuple[Owner, ...]  # whose adapters to use, in order of appearance
    weights: dict[Owner, float] = field(default_factory=dict)  # strengths written after names
    plain: bool = False  # the requester has no adapter yet: the base model alone
    tokens: tuple[str, ...] = ()  # how the text names each of `owners`, in the same order


async def resolve_prompt(prompt: str, requester: Owner, members: MemberStore,
                         from_photos: bool = False) -> ResolvedPrompt:
    """`from_photos`: the base takes reference photos, so a member without an adapter is drawn from theirs
    (whether they have photos fit for it is the caller's to check)."""
    tokens = await members.tokens_in(requester.guild_id)
    token_of = {owner.member_id: token for token, owner in tokens.items()}

    def mention_to_token(match: re.Match) -> str:
        member_id = int(match.group(1))
        if member_id not in token_of:
            raise PromptRefused(f"<@{member_id}> has no adapter yet")
        return token_of[member_id]

    text = MENTION.sub(mention_to_token, prompt).strip()
    weights: dict[Owner, float] = {}

    def take_weight(match: re.Match) -> str:
        if match.group(1) not in tokens:
            return match.group(0)  # "16:9" and the like are the prompt's own
        weight = float(match.group(2))
        if weight > MAX_WEIGHT:
            raise PromptRefused(f"a strength after a name goes from 0 to {MAX_WEIGHT}, not {match.group(2)}")
        weights[tokens[match.group(1)]] = weight
        return match.group(1)

    text = WEIGHTED.sub(take_weight, text)
    named = [tokens[word] for word in re.findall(r"[A-Za-z0-9]+", text) if word in tokens]
    owners = tuple(dict.fromkeys(named))  # each person once, in order
    if not owners:
        own = token_of.get(requester.member_id)
        if own is None or (await members.adapter(requester) is None and not (
                from_photos and await members.photos(requester))):
            return ResolvedPrompt(text, (), plain=True)
        return ResolvedPrompt(f"{own}, {text}", (requester,), tokens=(own,))
    for owner in owners:
        if not await members.may_use(requester, owner):
            raise PromptRefused(f"<@{owner.member_id}> has not shared their adapter with you")
        if await members.adapter(owner) is None and not from_photos:
            raise PromptRefused(f"<@{owner.member_id}> has not trained an adapter yet, and this picture model "
                                "cannot draw someone from their photos alone (FLUX.2 [klein] can)")
    return ResolvedPrompt(text, owners, weights, tokens=tuple(token_of[o.member_id] for o in owners))
