"""Whether a trigger token is new to a base model, judged by the model's own tokenizers (CLIP and T5 on Flux).

A token that is one existing token already means something to the model: training would bend that
meaning instead of making a new word. A token that tokenizes like another member's would blend the two
people. The bot applies this to the tokens it makes up; `python -m trainer train --token` to the one given.
The `tokenizers` library only (no torch), so both sides use it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

TOKENIZER_FOLDERS = ("tokenizer", "tokenizer_2")  # CLIP, T5: as in every Flux pipeline


class TokenChecker:
    """The base model's tokenizers, loaded without torch."""

    def __init__(self, tokenizers: list):
        self.tokenizers = tokenizers

    @classmethod
    def for_base(
        cls,
        base: str,
        model_cache_dir: Path,
        hf_token: str | None = None,
        warn: bool = True,
        folders: Sequence[str] = TOKENIZER_FOLDERS,
    ) -> TokenChecker:
        """Blocking (reads files, may download two small JSON files): call in a thread.

        `base` is a folder, a Hub id or `tiny`; `folders` are its tokenizers' subfolders. Tokenizers that
        cannot be read (offline, gated) are left out, with a warning unless `warn` is False: tokens can then
        only be checked against each other.
        """
        from tokenizers import Tokenizer

        from contract.models import TINY_FOLDERS

        folder = model_cache_dir / TINY_FOLDERS[base] if base in TINY_FOLDERS else Path(base).expanduser()
        if base in TINY_FOLDERS and not folder.is_dir():
            # built offline with the model, at its first use: never on the Hub
            log.info("the %s model is not built yet: trigger tokens are checked against each other only", base)
            return cls([])
        loaded = []
        for sub in folders:
            try:
                if folder.is_dir():
                    path = folder / sub / "tokenizer.json"
                    if not path.parent.is_dir():
                        continue  # a family with one tokenizer (FLUX.2 [klein])
                else:
                    from huggingface_hub import hf_hub_download

                    path = Path(hf_hub_download(base, f"{sub}/tokenizer.json", token=hf_token))
                loaded.append(Tokenizer.from_file(str(path)))
            except Exception as exc:  # offline, gated, or no tokenizer.json: uniqueness still holds
                if warn:
                    log.warning("cannot check trigger tokens against %s/%s: %s", base, sub, exc)
        return cls(loaded)

    def pieces(self, word: str) -> list[tuple[int, ...]]:
        return [tuple(t.encode(word, add_special_tokens=False).ids) for t in self.tokenizers]

    def problem(self, candidate: str, others: Sequence[str] = ()) -> str | None:
        """Why `candidate` cannot be a trigger token, in a person's words; None when it can."""
        mine = self.pieces(candidate)
        if any(len(ids) < 2 for ids in mine):
            return (
                f"the token '{candidate}' is a word the base model already knows (it reads it as one token), "
                "so training would change what that word means; choose a made-up word such as THGH96"
            )
        for other in others:
            if any(ids in self.pieces(other) for ids in mine):
                return f"the token '{candidate}' reads to the base model like '{other}'"
        return None

    def acceptable(self, candidate: str, others: Sequence[str]) -> bool:
        return self.problem(candidate, others) is None
