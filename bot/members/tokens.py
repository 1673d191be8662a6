"""Trigger tokens: a made-up word per member, like THGH96, that names them in prompts.

Four consonants and two digits form no English word. A candidate is also run
through the base model's own tokenizers (CLIP and T5): it must not be one
existing token (which already means something to the model), and must not
tokenize like another member's token (which would blend the two people).
"""

from __future__ import annotations

import secrets

from contract.tokens import TokenChecker

__all__ = ["TokenChecker", "new_token", "random_token"]

CONSONANTS = "BCDFGHJKLMNPQRSTVWXZ"


def random_token() -> str:
    letters = "".join(secrets.choice(CONSONANTS) for _ in range(4))
    return letters + f"{secrets.randbelow(100):02d}"


def new_token(taken: list[str], checker: TokenChecker, tries: int = 200) -> str:
    for _ in range(tries):
        candidate = random_token()
        if candidate not in taken and checker.acceptable(candidate, taken):
            return candidate
    raise RuntimeError("could not find a free trigger token")
