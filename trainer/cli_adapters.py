"""The command line's adapter files: `PATH[:WEIGHT]`, and what each one is, read from its header.

`generate --lora person.safetensors --lora style.safetensors:0.8` draws with both, the style at 0.8. A file's
subject (`doppel.subject`: a person's or a style) comes from the file, never from how it was given, so a style
is always used as a style. No torch here: the options are checked before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contract import AdapterRef, adapter_identity
from contract.models import adapter_facts
from contract.subjects import subject_of
from trainer.errors import DoppelError


@dataclass(frozen=True)
class AdapterArg:
    """One `--lora` as given: the file, and its strength when the option said one (`:WEIGHT`)."""

    path: Path
    weight: float | None = None

    @classmethod
    def parse(cls, text: str) -> AdapterArg:
        """`PATH` or `PATH:WEIGHT`; a path that itself ends in `:<number>` and exists is taken whole."""
        head, sep, tail = str(text).rpartition(":")
        if sep and head and not Path(text).is_file():
            try:
                return cls(Path(head), float(tail))
            except ValueError:
                pass
        return cls(Path(text))


def adapter_refs(args: list[AdapterArg], weights: list[float], names: list[str]) -> list[tuple[AdapterRef, Path]]:
    """Each `--lora` as the contract's reference (its subject from its header) with its file.

    `weights`: the `--weight` options, one per `--lora` or none; a file given a strength both ways is refused."""
    if weights and len(weights) != len(args):
        raise DoppelError(f"give one --weight per --lora ({len(args)}), or none")
    found = []
    for k, (arg, name) in enumerate(zip(args, names, strict=True)):
        if arg.weight is not None and weights:
            raise DoppelError(f"'{arg.path}' is given a strength twice (':{arg.weight:g}' and --weight "
                              f"{weights[k]:g}): use one of them")
        if not arg.path.is_file():
            raise DoppelError(f"there is no adapter file at '{arg.path}'")
        weight = arg.weight if arg.weight is not None else weights[k] if weights else 1.0
        subject = subject_of(adapter_facts(arg.path))
        found.append((AdapterRef(name, adapter_identity(arg.path.read_bytes()), weight, subject), arg.path))
    return found
