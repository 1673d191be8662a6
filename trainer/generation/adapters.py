"""Two ways of putting a request's adapters into the pipeline, behind one interface.

Both key an adapter by its `AdapterRef.name` (whose it is) and treat its
`identity` (its content hash) as the version: another identity under a known
name is read again, the same identity never is. Both keep at most
`max_adapters`, least recently used out first.

- `NamedAdapters`: peft named adapters, mixed with `set_adapters` and their
  strengths; with hotswap, an evicted or retrained adapter's slot is overwritten
  in place (`load_lora_weights(..., hotswap=True)`), which works because every
  adapter is trained with the same rank and target modules.
- `CompiledSlots`: the transformer is `torch.compile`d once with a fixed set of
  LoRA slots, one per adapter a picture may use, padded to `hotswap_rank`
  (peft's `prepare_model_for_compiled_hotswap`). A request's adapters are
  hotswapped into slots 1..k, their strengths folded into B, and exactly those
  slots are activated; so switching members never changes the graph and
  nothing recompiles. Each distinct (image size, k) compiles once. Adapters are
  held on the device, so a switch is a copy.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import torch

from contract import AdapterRef, limits
from contract.subjects import PERSON, STYLE, subject_of
from trainer.errors import DoppelError
from trainer.models import memory
from trainer.models.families import FAMILIES, Family, family_of_pipeline


class Use(NamedTuple):
    """An adapter a request uses, and its file here (None: not given; enough while it is held)."""

    ref: AdapterRef
    path: Path | None


class AdapterStrategy(Protocol):
    max_adapters: int
    one_picture_at_a_time: bool  # True: each picture is its own pipeline call (one graph per size)

    @property
    def loaded(self) -> list[str]:
        """Adapter names held now, least recently used first."""

    def holds(self, ref: AdapterRef) -> bool:
        """Whether `ref` is held at its identity, so that its file would not be read."""

    def activate(self, uses: Sequence[Use]) -> None:
        """Exactly these adapters at these strengths for the next pictures (none: the base model)."""

    def forget(self, name: str) -> None:
        """Drop `name`'s adapter, leaving no trace of it in the weights."""


def _file(use: Use, family: Family) -> Path:
    """The adapter's file, once it is known to be one for `family` (the generator's base's)."""
    if use.path is None or not Path(use.path).is_file():
        shown = f" ({Path(use.path).name})" if use.path is not None else ""
        raise DoppelError(f"the adapter file for '{use.ref.name}' is missing{shown}")
    _check_file(Path(use.path), use.ref, family)
    return Path(use.path)


def _check_file(path: Path, ref: AdapterRef, family: Family) -> None:
    """Refuse an adapter trained on another model family (its layers are not this transformer's), or one used as
    what it is not: a style is never drawn as a person's face, nor a person's adapter over a whole picture."""
    from trainer.training.lora_file import read_facts

    try:
        facts = read_facts(path)
    except Exception:  # not a safetensors file: loading it says why
        return
    name = ref.name
    subject = subject_of(facts)
    if subject != ref.subject:
        said: dict[str, str] = {PERSON: "a person's adapter", STYLE: "a style"}
        raise DoppelError(
            f"the adapter '{name}' is {said.get(subject, subject)}, so it cannot be used as "
            f"{said.get(ref.subject, ref.subject)}: a style is never drawn as someone's face, nor a person as a style"
        )
    theirs = facts.get("family", "flux1")  # adapters from before families were recorded are FLUX.1's
    if theirs != family.name:
        title = FAMILIES[theirs].title if theirs in FAMILIES else theirs
        raise DoppelError(
            f"the adapter '{name}' was trained on {title} ({facts.get('base_model', 'another base')}) and cannot "
            f"be used with {family.title}: train it again on this base model"
        )


def _unloadable(name: str, exc: Exception) -> DoppelError:
    return DoppelError(f"the adapter '{name}' could not be loaded: {(str(exc).splitlines() or [''])[0]}")


@dataclass
class _Slot:
    name: str  # the peft adapter name inside the pipeline
    identity: str  # what it holds


class NamedAdapters:
    """peft named adapters, one per member, mixed with `set_adapters`."""

    one_picture_at_a_time = False

    def __init__(self, pipe, max_adapters: int, hotswap: bool = False, hotswap_rank: int = 16):
        self.pipe = pipe
        self.family = family_of_pipeline(pipe)
        self.max_adapters = max_adapters
        self.hotswap = hotswap
        self._slots: OrderedDict[str, _Slot] = OrderedDict()  # adapter name -> slot, oldest first
        self._slot_count = 0
        self._free_slots: list[str] = []  # hotswap slots whose adapter was forgotten or failed to load
        if hotswap:
            # Must come before the first adapter is loaded: pads every slot to this rank.
            pipe.enable_lora_hotswap(target_rank=hotswap_rank)

    @property
    def loaded(self) -> list[str]:
        return list(self._slots)

    def holds(self, ref: AdapterRef) -> bool:
        slot = self._slots.get(ref.name)
        return slot is not None and slot.identity == ref.identity

    def activate(self, uses: Sequence[Use]) -> None:
        if not uses:
            if self._slot_count:  # anything ever loaded, freed hotswap slots included
                self.pipe.disable_lora()
            return
        keep = {use.ref.name for use in uses}
        slots = [self._load(use, keep) for use in uses]
        self.pipe.enable_lora()
        self.pipe.set_adapters([slot.name for slot in slots], [use.ref.weight for use in uses])

    def forget(self, name: str) -> None:
        slot = self._slots.pop(name, None)
        if slot is None:
            return
        if self.hotswap:
            self._free_slots.append(slot.name)  # overwritten by the next adapter; never active before that
        else:
            self.pipe.delete_adapters(slot.name)

    def _discard(self, slot_name: str) -> None:
        """A slot whose load failed: kept for the next adapter, or deleted, so slots stay within max_adapters."""
        if slot_name not in getattr(self.pipe.transformer, "peft_config", {}):
            return
        if self.hotswap:
            self._free_slots.append(slot_name)
        else:
            self.pipe.delete_adapters(slot_name)

    def _load(self, use: Use, keep: set[str]) -> _Slot:
        name = use.ref.name
        slot = self._slots.get(name)
        if slot is not None and slot.identity == use.ref.identity:
            self._slots.move_to_end(name)
            return slot
        path = _file(use, self.family)
        if slot is not None:  # retrained: same name, new weights, same slot
            del self._slots[name]
            reuse = slot.name
        elif len(self._slots) >= self.max_adapters:
            # max_adapters >= ADAPTERS_PER_PICTURE, so one not in this request is always there to go.
            oldest = next(n for n in self._slots if n not in keep)
            reuse = self._slots.pop(oldest).name
        else:
            reuse = None
        if reuse is not None and not self.hotswap:
            self.pipe.delete_adapters(reuse)
            reuse = None
        if reuse is None and self._free_slots:
            reuse = self._free_slots.pop()
        if reuse is None:
            self._slot_count += 1
            slot_name = f"slot{self._slot_count}"
        else:
            slot_name = reuse
        try:
            with memory.quiet_torchao_lora():
                self.pipe.load_lora_weights(str(path), adapter_name=slot_name, hotswap=reuse is not None)
        except Exception as exc:
            self._discard(slot_name)
            raise _unloadable(name, exc) from exc
        self._slots[name] = _Slot(slot_name, use.ref.identity)
        return self._slots[name]


class CompiledSlots:
    """A `torch.compile`d transformer with fixed hotswap slots; switching adapters never recompiles."""

    one_picture_at_a_time = True  # batch 1: one graph per size

    def __init__(self, pipe, device, max_adapters: int, hotswap_rank: int = 16):
        self.pipe = pipe
        self.family = family_of_pipeline(pipe)
        self.device = device
        self.max_adapters = max_adapters
        self.hotswap_rank = hotswap_rank
        self._held: OrderedDict[str, _Held] = OrderedDict()  # adapter name -> weights on the device, oldest first
        self._in_slot: list[tuple | None] = []  # what each fixed slot holds: (name, identity, weight)
        self._active: list[str] = []  # the slots switched on now
        self._compile()

    @property
    def loaded(self) -> list[str]:
        return list(self._held)

    def holds(self, ref: AdapterRef) -> bool:
        held = self._held.get(ref.name)
        return held is not None and held.identity == ref.identity

    def activate(self, uses: Sequence[Use]) -> None:
        for index, use in enumerate(uses):
            held = self._hold(use)
            wanted = (use.ref.name, held.identity, use.ref.weight)
            if self._in_slot[index] != wanted:
                self._swap_into(index, held.scaled(use.ref.weight), wanted)
        if not uses and self._in_slot[0] is not None:
            self._swap_into(0, None)  # no adapter: slot 1, emptied
        active = [_fixed_slot(i) for i in range(max(1, len(uses)))]
        if active != self._active:
            self.pipe.transformer.set_adapter(active)
            self._active = active

    def forget(self, name: str) -> None:
        self._held.pop(name, None)
        for index, holding in enumerate(self._in_slot):
            if holding is not None and holding[0] == name:
                self._swap_into(index, None)

    def _compile(self) -> None:
        """Fixed LoRA slots (zero weights, rank `hotswap_rank`), padded and made swappable, then torch.compile."""
        from peft import LoraConfig
        from peft.utils.hotswap import prepare_model_for_compiled_hotswap

        transformer = self.pipe.transformer
        for index in range(limits.ADAPTERS_PER_PICTURE):
            # init_lora_weights=True makes B zero: an empty slot changes nothing.
            config = LoraConfig(
                r=self.hotswap_rank, lora_alpha=self.hotswap_rank, target_modules=list(self.family.lora_targets)
            )
            with memory.quiet_torchao_lora():
                transformer.add_adapter(config, adapter_name=_fixed_slot(index))
            self._in_slot.append(None)
        # Scalings become tensors (a new adapter's alpha/rank changes a value, not the graph).
        prepare_model_for_compiled_hotswap(transformer, target_rank=self.hotswap_rank, config=transformer.peft_config)
        self._active = [_fixed_slot(0)]
        transformer.set_adapter(self._active)
        transformer.requires_grad_(False)
        transformer.compile(fullgraph=True, dynamic=False)
        # Each (size, adapter count) is a graph of its own: 3 sizes x 4 counts must fit the cache.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 16)

    def _hold(self, use: Use) -> _Held:
        """The adapter's weights on the device, read once per identity."""
        name = use.ref.name
        held = self._held.get(name)
        if held is None or held.identity != use.ref.identity:
            path = _file(use, self.family)
            try:
                held = _Held.read(self.family, path, use.ref.identity, self.device, self.pipe.transformer.dtype)
            except Exception as exc:
                raise _unloadable(name, exc) from exc
            self._held[name] = held
        self._held.move_to_end(name)
        # A request's own adapters are the most recent, so with max_adapters >= ADAPTERS_PER_PICTURE none goes.
        while len(self._held) > self.max_adapters:
            self._held.popitem(last=False)
        return held

    def _swap_into(self, index: int, state: dict | None, holding: tuple | None = None) -> None:
        """Replace fixed slot `index`'s weights in place (None: zeros, an empty slot)."""
        name = _fixed_slot(index)
        self._in_slot[index] = None
        try:
            if state is None:
                _zero_slot(self.pipe.transformer, name)
            else:
                self.pipe.load_lora_weights(state, adapter_name=name, hotswap=True)
        except Exception as exc:
            _zero_slot(self.pipe.transformer, name)  # half-swapped weights would draw a mix
            raise _unloadable(holding[0] if holding else name, exc) from exc
        self._in_slot[index] = holding


@dataclass
class _Held:
    """An adapter's weights on the device, as diffusers names them, its alpha/rank folded into B."""

    identity: str
    state: dict[str, torch.Tensor]

    @classmethod
    def read(cls, family: Family, path: Path, identity: str, device, dtype) -> _Held:
        state, metadata = family.lora_state_dict(path)
        if not state or not all(".lora_A." in k or ".lora_B." in k for k in state):
            raise DoppelError("it is not a LoRA adapter for the transformer")
        # diffusers keeps the adapter's LoraConfig in the header, its keys prefixed "transformer.".
        config = {k.removeprefix("transformer."): v for k, v in (metadata or {}).items()}
        if config.get("rank_pattern") or config.get("alpha_pattern"):
            raise DoppelError("adapters with per-layer ranks or alphas cannot be hotswapped")
        rank = config.get("r") or next(v.shape[0] for k, v in state.items() if ".lora_A." in k)
        alpha = config.get("lora_alpha") or rank
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        return cls(identity, {k: (v * scale if ".lora_B." in k else v).to(device, dtype) for k, v in state.items()})

    def scaled(self, weight: float) -> dict[str, torch.Tensor]:
        """The weights at strength `weight` (folded into B, so the graph's scaling stays 1)."""
        if weight == 1.0:
            return dict(self.state)
        return {k: v * weight if ".lora_B." in k else v for k, v in self.state.items()}


def _fixed_slot(index: int) -> str:
    return f"fixed{index + 1}"


def _zero_slot(transformer, name: str) -> None:
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for module in transformer.modules():
            if isinstance(module, LoraLayer) and name in module.lora_B:
                module.lora_B[name].weight.zero_()  # type: ignore[operator]  # torch types submodules loosely

