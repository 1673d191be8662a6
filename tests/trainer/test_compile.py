"""A compiled generator: adapters hotswapped into fixed slots, and no recompilation when members switch.

Compiling on a 2-core CPU takes tens of seconds, so the module has one compiled
generator, warmed up once, and compares it with one uncompiled generator.
"""

import numpy as np
import pytest
import torch
from peft import LoraConfig
from safetensors.torch import load_file, save_file

from contract import AdapterRef, GenerateRequest, adapter_identity
from tests.conftest import TOKEN
from trainer.generation.generator import Generator
from trainer.models.families.flux1 import LORA_TARGETS as FLUX_LORA_TARGETS
from trainer.training.lora_file import lora_config_dict, save_lora

PROMPT = f"photo of {TOKEN} in a garden"
TOLERANCE = 3  # pixel levels out of 255: compiled kernels round differently from eager ones


@pytest.fixture(scope="module")
def adapters(trained, tmp_path_factory):
    """Rank-16 adapters (the trained one, and one with B negated) and a rank-8 one with alpha 4."""
    folder = tmp_path_factory.mktemp("compile-adapters")
    tensors = load_file(trained.lora_path)
    negated = folder / "negated.safetensors"
    save_file({k: -v if "lora_B" in k else v for k, v in tensors.items()}, negated)
    # Rank 8: the trained adapter's first 8 directions, B doubled so that alpha 4 (scale 0.5) keeps its strength.
    sliced = {
        k.removeprefix("transformer."): v[:8].clone() if "lora_A" in k else 2 * v[:, :8]
        for k, v in tensors.items()
    }
    config = lora_config_dict(LoraConfig(r=8, lora_alpha=4, target_modules=list(FLUX_LORA_TARGETS)))
    (folder / "rank8").mkdir()
    rank8 = save_lora(folder / "rank8", sliced, config, {"rank": 8})
    return {"first": trained.lora_path, "negated": negated, "rank8": rank8}


@pytest.fixture(scope="module")
def eager(tiny_dir):
    return Generator("tiny", max_adapters=4)


@pytest.fixture(scope="module")
def compiled(tiny_dir):
    generator = Generator("tiny", max_adapters=4, compile=True, hotswap_rank=16)
    generator.warm_up_seconds = generator.warm_up()
    return generator


class AdapterUse:
    """An adapter a test request uses: the contract's reference to it, and its file."""

    def __init__(self, name, path, weight=1.0):
        self.name, self.path = name, path
        self.ref = AdapterRef(name, adapter_identity(path.read_bytes()), weight)


def ask(*uses, seed=5, count=1):
    request = GenerateRequest(base="tiny", prompt=PROMPT, adapters=tuple(u.ref for u in uses), seed=seed, count=count)
    return request, {u.ref.identity: u.path for u in uses}


def _picture(generator, *uses, seed=5, count=1):
    images = generator.generate(*ask(*uses, seed=seed, count=count))
    return [np.asarray(image.image, dtype=np.int16) for image in images]


def test_switching_members_never_recompiles_and_matches_the_uncompiled_pictures(compiled, eager, adapters):
    plans = [
        (AdapterUse("ann", adapters["first"]),),
        (AdapterUse("bob", adapters["negated"]),),
        (AdapterUse("cem", adapters["rank8"]),),  # rank 8 in a rank-16 slot, alpha 4
        (),
        (AdapterUse("ann", adapters["first"], 0.5),),
        (AdapterUse("bob", adapters["negated"]),),
    ]
    expected = [_picture(eager, *uses)[0] for uses in plans]
    with torch._dynamo.config.patch(error_on_recompile=True):
        got = [_picture(compiled, *uses)[0] for uses in plans]
        switch_seconds = compiled.last_switch_s
    for uses, want, have in zip(plans, expected, got, strict=True):
        assert np.abs(want - have).max() <= TOLERANCE, [u.name for u in uses]
    for index in (0, 1, 2):  # each adapter changes the picture
        assert np.abs(got[index] - got[3]).mean() > 1, index
    assert switch_seconds < 1.0
    assert compiled.loaded_adapters == ["cem", "ann", "bob"]


def test_several_pictures_and_two_adapters(compiled, eager, adapters):
    two = (AdapterUse("ann", adapters["first"]), AdapterUse("cem", adapters["rank8"], 0.7))
    progress = []
    request, files = ask(*two, seed=5, count=2)
    # Two adapters: a graph of its own, compiled once here. Pictures one at a time, progress over both.
    made = compiled.generate(request, files, lambda *p: progress.append(p))
    first = [np.asarray(i.image, dtype=np.int16) for i in made]
    steps = compiled.base.inference_steps
    assert progress == [(k, 2 * steps) for k in range(1, 2 * steps + 1)]
    with torch._dynamo.config.patch(error_on_recompile=True):
        swapped = _picture(compiled, AdapterUse("bob", adapters["negated"]), AdapterUse("ann", adapters["first"]))
        again = _picture(compiled, *two, count=2)
    expected = _picture(eager, *two, count=2)
    for want, have, repeat in zip(expected, first, again, strict=True):
        assert np.abs(want - have).max() <= TOLERANCE
        assert np.array_equal(have, repeat)
    assert np.abs(swapped[0] - first[0]).mean() > 1


def test_a_forgotten_adapter_leaves_no_trace(compiled, eager, adapters):
    _picture(compiled, AdapterUse("ann", adapters["first"]))
    compiled.forget("ann")
    assert "ann" not in compiled.loaded_adapters
    assert all(holding is None or holding[0] != "ann" for holding in compiled.adapters._in_slot)
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert np.abs(_picture(compiled)[0] - _picture(eager)[0]).max() <= TOLERANCE


def test_at_most_max_adapters_are_held_and_a_held_one_is_never_read_again(compiled, adapters, tmp_path):
    kept = tmp_path / "kept.safetensors"
    kept.write_bytes(adapters["first"].read_bytes())
    uses = [AdapterUse("dee", kept)] + [AdapterUse(n, adapters["negated"]) for n in ("eve", "fay", "gus", "hal")]
    with torch._dynamo.config.patch(error_on_recompile=True):
        drawn = _picture(compiled, uses[0])[0]
        kept.unlink()
        request, _ = ask(uses[0])
        again = np.asarray(compiled.generate(request)[0].image, dtype=np.int16)  # held: no file needed
        for use in uses[1:]:
            _picture(compiled, use)
    assert np.array_equal(again, drawn)
    assert compiled.loaded_adapters == ["eve", "fay", "gus", "hal"]  # max_adapters is 4; "dee" went first
    assert not compiled.holds(uses[0].ref)
