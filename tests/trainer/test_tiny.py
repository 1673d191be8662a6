import hashlib

import torch

from contract.models import FAMILY_TITLES, TINY_FOLDERS
from trainer.models.base_model import load_pipeline, resolve_base, write_tiny
from trainer.models.families import FAMILIES


def _digests(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_the_tiny_model_is_the_same_bytes_every_time(tmp_path, tiny_dir):
    write_tiny("tiny", tmp_path / "again")
    assert _digests(tmp_path / "again") == _digests(tiny_dir)


def test_every_tiny_model_is_its_familys():
    # The torch-free names (the bot's token checks read their tokenizers) are the ones the families build.
    assert sorted(TINY_FOLDERS) == sorted(name for family in FAMILIES.values() for name in family.tiny_shapes)
    assert {name: family.title for name, family in FAMILIES.items()} == FAMILY_TITLES
    assert [family.tiny_name() for family in FAMILIES.values()] == ["tiny", "tiny-klein"]


def test_tiny_loads_through_from_pretrained_and_makes_a_picture(tiny_dir):
    base = resolve_base("tiny")
    assert base.is_tiny and base.image_resolution == 64
    pipe = load_pipeline(base)
    assert type(pipe).__name__ == "FluxPipeline"
    image = pipe(
        "photo of THGH96",
        height=64,
        width=64,
        num_inference_steps=2,
        max_sequence_length=base.max_sequence_length,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)


def test_a_local_folder_or_hub_id_resolves(tiny_dir, tmp_path):
    assert resolve_base(str(tiny_dir)).is_tiny
    dev = resolve_base("black-forest-labs/FLUX.1-dev")
    schnell = resolve_base("black-forest-labs/FLUX.1-schnell")
    assert (dev.inference_steps, dev.guidance, dev.max_sequence_length) == (28, 3.5, 512)
    assert (schnell.inference_steps, schnell.guidance, schnell.max_sequence_length) == (4, 0.0, 256)


def test_a_base_that_is_not_there_is_refused(tmp_path, model_cache):
    import pytest

    from trainer.errors import BaseModelError

    with pytest.raises(BaseModelError, match="neither a folder"):
        resolve_base(str(tmp_path / "missing"))
    with pytest.raises(BaseModelError, match="no model_index.json"):
        resolve_base(str(tmp_path))
    with pytest.raises(BaseModelError, match="could not load base model"):
        load_pipeline(resolve_base("someone/not-cached-here"))
