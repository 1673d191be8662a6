"""FLUX.2 [klein] beside FLUX.1: the tiny klein, its adapters in plain diffusers, on the distilled model, and
refused by a generator of the other family. (Resuming on klein: test_train.py, parametrised over both.)"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from contract import AdapterRef, GenerateRequest, SourcePicture, adapter_identity, picture_identity
from tests.conftest import TOKEN
from trainer.errors import DoppelError
from trainer.generation.generator import Generator
from trainer.models.base_model import load_pipeline, resolve_base
from trainer.models.families import FLUX1, FLUX2_KLEIN
from trainer.training.config import TrainConfig
from trainer.training.lora_file import read_facts
from trainer.training.sampling import draw_samples
from trainer.training.train import train_lora


@pytest.fixture(scope="module")
def klein_trained(model_cache, photos, tmp_path_factory):
    """A short klein run with a high learning rate (the random tiny klein needs 5e-2 to show learning in 6 steps)."""
    out = tmp_path_factory.mktemp("klein-trained")
    config = TrainConfig.from_options(
        base="tiny-klein", images=photos, token=TOKEN, out=out, steps=6, lr=5e-2, sample_every=0
    )
    return train_lora(config)


@pytest.fixture(scope="module")
def distilled(model_cache):
    return Generator("tiny-klein-distilled", max_adapters=4)


def _picture(pipe, steps=4, guidance=1.0):
    image = pipe(
        prompt=f"photo of {TOKEN}",  # by keyword: klein's first positional argument is an image
        height=64,
        width=64,
        num_inference_steps=steps,
        guidance_scale=guidance,
        max_sequence_length=64,
        generator=torch.Generator().manual_seed(7),
    ).images[0]
    return np.asarray(image, dtype=np.int16)


def test_tiny_klein_is_a_klein_pipeline_recognised_from_its_model_index(model_cache):
    base, fast = resolve_base("tiny-klein"), resolve_base("tiny-klein-distilled")
    assert base.family is FLUX2_KLEIN and fast.family is FLUX2_KLEIN and resolve_base("tiny").family is FLUX1
    index = json.loads((Path(base.location) / "model_index.json").read_text())
    assert index["_class_name"] == "Flux2KleinPipeline" and index["tokenizer"] == ["transformers", "Qwen2Tokenizer"]
    assert (index["is_distilled"], base.guidance) == (False, 4.0)  # a base: classifier-free guidance
    assert json.loads((Path(fast.location) / "model_index.json").read_text())["is_distilled"]
    assert (fast.guidance, fast.inference_steps, fast.image_resolution) == (1.0, 4, 64)
    hub = resolve_base("black-forest-labs/FLUX.2-klein-base-4B"), resolve_base("black-forest-labs/FLUX.2-klein-4B")
    assert [(b.family, b.inference_steps, b.guidance) for b in hub] == [(FLUX2_KLEIN, 50, 4.0), (FLUX2_KLEIN, 4, 1.0)]


def test_a_klein_adapter_loads_in_a_plain_flux2_klein_pipeline_and_changes_the_picture(klein_trained, model_cache):
    from diffusers import Flux2KleinPipeline

    facts = read_facts(klein_trained.lora_path)
    assert (facts["family"], facts["base_model"]) == ("flux2-klein", "tiny-klein")
    pipe = Flux2KleinPipeline.from_pretrained(resolve_base("tiny-klein").location, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    before = _picture(pipe)
    pipe.load_lora_weights(klein_trained.lora_path.parent, adapter_name="me")
    assert np.abs(_picture(pipe) - before).mean() > 1.0


def test_an_adapter_trained_on_the_base_acts_on_the_distilled_model(klein_trained, distilled):
    ref = AdapterRef("me", adapter_identity(klein_trained.lora_path.read_bytes()))

    def draw(*refs):
        request = GenerateRequest(base="tiny-klein-distilled", prompt=f"photo of {TOKEN}", adapters=refs, seed=3)
        return np.asarray(distilled.generate(request, {ref.identity: klein_trained.lora_path})[0].image, np.int16)

    assert distilled.base.inference_steps == 4
    assert np.abs(draw(ref) - draw()).mean() > 1.0


def test_a_flux1_adapter_is_refused_by_a_klein_generator_with_its_reason(trained, distilled):
    ref = AdapterRef("them", adapter_identity(trained.lora_path.read_bytes()))
    request = GenerateRequest(base="tiny-klein-distilled", prompt="photo", adapters=(ref,), seed=1)
    with pytest.raises(DoppelError, match=r"trained on FLUX\.1 \(tiny\) and cannot be used with FLUX\.2 \[klein\]"):
        distilled.generate(request, {ref.identity: trained.lora_path})
    assert "them" not in distilled.loaded_adapters
    assert distilled.generate(GenerateRequest(base="tiny-klein-distilled", prompt="photo", seed=1))  # still draws


def test_the_cli_generates_on_the_distilled_klein_with_a_base_trained_adapter(klein_trained, tmp_path, capsys):
    from trainer.cli import main

    code = main(["generate", "--base", "tiny-klein-distilled", "--lora", str(klein_trained.lora_path),
                 "--prompt", f"photo of {TOKEN}", "--seed", "5", "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "seed-5.png").is_file()


def test_the_inpainting_pipeline_shares_the_models(distilled):
    inpaint = distilled.base.family.inpaint_pipeline(distilled.pipe)
    assert type(inpaint).__name__ == "Flux2KleinInpaintPipeline" and inpaint.transformer is distilled.pipe.transformer


def test_klein_draws_from_a_picture_with_its_inpainting_pipeline_the_whole_picture_masked(distilled):
    request = GenerateRequest(base="tiny-klein-distilled", prompt=f"photo of {TOKEN}", seed=5)
    (first,) = distilled.generate(request)
    source = SourcePicture(picture_identity(first.png()), 0.3, 2)
    (upscaled,) = distilled.generate(replace(request, source=source), source=first.image)
    assert upscaled.image.size == (128, 128)
    small = np.asarray(upscaled.image.resize(first.image.size), dtype=np.int16)
    assert np.abs(small - np.asarray(first.image, dtype=np.int16)).mean() > 0  # drawn, not only resized


def test_make_tiny_writes_the_tiny_klein_the_same_bytes_every_time(model_cache, tmp_path, capsys):
    import hashlib

    from trainer.cli import main

    def digests(folder):
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    assert main(["make-tiny", str(tmp_path / "again"), "--family", "flux2-klein"]) == 0
    assert "FLUX.2 [klein] (base)" in capsys.readouterr().out
    assert digests(tmp_path / "again") == digests(Path(resolve_base("tiny-klein").location))


def test_samples_on_a_klein_base_reuse_the_cached_empty_prompt_for_their_guidance(model_cache):
    base = resolve_base("tiny-klein")
    pipe = load_pipeline(base)
    prompt = f"photo of {TOKEN}"
    cached = {text: FLUX2_KLEIN.encode_prompt(pipe, text, "cpu", base.max_sequence_length) for text in (prompt, "")}
    calls = []
    hook = pipe.text_encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        # What the pipeline does on its own: the empty prompt encoded again, at the cache's length.
        own = pipe(prompt_embeds=cached[prompt].sequence, height=64, width=64, num_inference_steps=2,
                   guidance_scale=base.guidance, max_sequence_length=base.max_sequence_length,
                   generator=torch.Generator("cpu").manual_seed(3)).images[0]
        assert calls, "the base's guidance encodes the empty prompt when it is not handed one"
        calls.clear()
        reused = draw_samples(pipe, {prompt: cached[prompt]}, seed=3, size=64, steps=2, guidance=base.guidance,
                              device="cpu", empty=cached[""])
    finally:
        hook.remove()
    assert calls == []
    assert np.array_equal(np.asarray(reused[0]), np.asarray(own))


def test_an_exported_adapter_draws_the_same_picture_in_plain_diffusers(klein_trained, model_cache, tmp_path, capsys):
    """`python -m trainer export`, then diffusers' own loader for kohya files (not doppel's code) reads it."""
    from diffusers import Flux2KleinPipeline

    from contract.safetensors_raw import read_file
    from trainer.cli import main

    pipe = Flux2KleinPipeline.from_pretrained(resolve_base("tiny-klein").location, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(klein_trained.lora_path), adapter_name="original")
    original = _picture(pipe)
    pipe.delete_adapters("original")
    for key_format in ("comfyui", "diffusers"):
        out = tmp_path / f"me-{key_format}.safetensors"
        assert main(["export", "--lora", str(klein_trained.lora_path), "--format", key_format, "--out", str(out)]) == 0
        assert f"trigger token {TOKEN}, base tiny-klein" in capsys.readouterr().out
        tensors, metadata = read_file(out)
        assert (metadata["modelspec.trigger_phrase"], metadata["doppel.base_model"]) == (TOKEN, "tiny-klein")
        if key_format == "comfyui":
            assert all(k.startswith("lora_unet_") for k in tensors) and "lora_adapter_metadata" not in metadata
        pipe.load_lora_weights(str(out), adapter_name=key_format)
        assert np.abs(_picture(pipe) - original).max() <= 1, key_format  # the same picture, to rounding
        pipe.delete_adapters(key_format)
    assert main(["export", "--lora", str(tmp_path / "none.safetensors"), "--format", "comfyui",
                 "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "no adapter file at" in capsys.readouterr().err
