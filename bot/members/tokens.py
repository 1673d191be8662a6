"""Trigger tokens: a made-up word per member, like THGH96, that names them in prompts.

Four consonants and two digits form no English word. A candidate is also run
through the base model's own tokenizers (CLIP and T5): it must not be one
existing token (which already means something to the model), and must not
tokenize like another member's token (which would blend the two people).
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

CONSONANTS = "BCDFGHJKLMNPQRSTVWXZ"
TOKENIZER_FOLDERS = ("tokenizer", "tokenizer_2")  # CLIP, T5: as in every Flux pipeline


def random_token() -> str:
    letters = "".join(secrets.choice(CONSONANTS) for _ in range(4))
    return letters + f"{secrets.randbelow(100):02d}"


class TokenChecker:
    """The base model's tokenizers, loaded without torch (the `tokenizers` library only)."""

    def __init__(self, tokenizers: list):
        self.tokenizers = tokenizers

    @classmethod
    def for_base(cls, base: str, model_cache_dir: Path, hf_token: str | None = None) -> TokenChecker:
        """Blocking (reads files, may download two small JSON files): call in a thread."""
        from tokenizers import Tokenizer

        folder = model_cache_dir / "tiny-flux" if base == "tiny" else Path(base).expanduser()
        loaded = []
        for sub in TOKENIZER_FOLDERS:
            try:
                if folder.is_dir():
                    path = folder / sub / "tokenizer.json"
                else:
                    from huggingface_hub import hf_hub_download

                    path = Path(hf_hub_download(base, f"{sub}/tokenizer.json", token=hf_token))
                loaded.append(Tokenizer.from_file(str(path)))
            except Exception as exc:  # offline, gated, or no tokenizer.json: uniqueness still holds
                log.warning("cannot check trigger tokens against %s/%s: %s", base, sub, exc)
        return cls(loaded)

    def pieces(self, word: str) -> list[tuple[int, ...]]:
        return [tuple(t.encode(word, add_special_tokens=False).ids) for t in self.tokenizers]

    def acceptable(self, candidate: str, others: list[str]) -> bool:
        mine = self.pieces(candidate)
        if any(len(ids) < 2 for ids in mine):
            return False  # a single existing token: the model already has a meaning for it
        taken = {p for other in others for p in self.pieces(other)}
        return not any(ids in taken for ids in mine)


def new_token(taken: list[str], checker: TokenChecker, tries: int = 200) -> str:
    for _ in range(tries):
        candidate = random_token()
        if candidate not in taken and checker.acceptable(candidate, taken):
            return candidate
    raise RuntimeError("could not find a free trigger token")
