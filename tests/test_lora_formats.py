"""LoRA files in other tools' formats, without torch: FLUX.1's export read back by diffusers' own converter at
FLUX.1-dev's widths, and a member's upload checked key by key and shape by shape (refused with a sentence)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from contract.base_shapes import base_family, base_folder, transformer_shapes
from contract.lora_formats import LoraFormatError, check_upload, export
from contract.safetensors_raw import Tensor, encode, read

WIDTH, MLP, RANK, ALPHA = 3072, 12288, 2, 4  # FLUX.1-dev's widths; alpha / rank = 2
FLUX1_MODULES = {  # a doppel FLUX.1 adapter's modules of one double and one single block: (in, out)
    **{f"transformer_blocks.0.attn.{m}": (WIDTH, WIDTH) for m in
       ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out")},
    "transformer_blocks.0.ff.net.0.proj": (WIDTH, MLP), "transformer_blocks.0.ff.net.2": (MLP, WIDTH),
    "transformer_blocks.0.ff_context.net.0.proj": (WIDTH, MLP), "transformer_blocks.0.ff_context.net.2": (MLP, WIDTH),
    **{f"single_transformer_blocks.0.attn.{m}": (WIDTH, WIDTH) for m in ("to_q", "to_k", "to_v")},
}


def _f32(array: np.ndarray) -> Tensor:
    return Tensor("F32", array.shape, array.astype("<f4").tobytes())


def flux1_dev_adapter() -> tuple[bytes, dict[str, tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    weights = {m: (rng.standard_normal((RANK, i)), rng.standard_normal((o, RANK))) for m, (i, o) in
               FLUX1_MODULES.items()}
    tensors = {}
    for module, (a, b) in weights.items():
        tensors[f"transformer.{module}.lora_A.weight"] = _f32(a)
        tensors[f"transformer.{module}.lora_B.weight"] = _f32(b)
    config = json.dumps({"r": RANK, "lora_alpha": ALPHA})
    metadata = {"lora_adapter_metadata": config, "doppel.token": "THGH96", "doppel.family": "flux1",
                "doppel.base_model": "black-forest-labs/FLUX.1-dev"}
    return encode(tensors, metadata), weights


def klein_layer() -> bytes:
    """A LoRA of FLUX.2 [klein]'s fused single-block layer, at the tiny widths, saying nothing of its family."""
    single = "transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj"
    return encode({f"{single}.lora_A.weight": _f32(np.zeros((2, 32))),
                   f"{single}.lora_B.weight": _f32(np.zeros((288, 2)))}, {})


def test_a_flux1_export_is_read_by_diffusers_own_kohya_converter_as_the_same_weights(tmp_path):
    from diffusers.loaders.lora_pipeline import FluxLoraLoaderMixin  # FluxPipeline.lora_state_dict

    data, weights = flux1_dev_adapter()
    exported = export(data, "comfyui")
    tensors, metadata = read(exported)
    assert all(k.startswith("lora_unet_") for k in tensors)
    assert "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight" in tensors
    assert (metadata["modelspec.trigger_phrase"], metadata["doppel.base_model"]) == ("THGH96",
                                                                                    "black-forest-labs/FLUX.1-dev")
    (tmp_path / "comfy.safetensors").write_bytes(exported)
    state = FluxLoraLoaderMixin.lora_state_dict(str(tmp_path / "comfy.safetensors"))  # diffusers' conversion, not ours
    probe = np.random.default_rng(1)
    for module, (a, b) in weights.items():  # the same change of every layer: (B @ A) x, for a random x
        down = state[f"transformer.{module}.lora_A.weight"].double().numpy()
        up = state[f"transformer.{module}.lora_B.weight"].double().numpy()
        x = probe.standard_normal(a.shape[1])
        want = (ALPHA / RANK) * (b.astype("f4").astype("f8") @ (a.astype("f4").astype("f8") @ x))
        np.testing.assert_allclose(up @ (down @ x), want, rtol=1e-4, atol=1e-3)
    mlp = state["transformer.single_transformer_blocks.0.proj_mlp.lora_B.weight"]
    assert not mlp.any()  # the MLP part of linear1 is not trained: its rows are zeros


def test_an_export_in_an_unknown_format_or_of_a_damaged_file_says_so():
    data, _ = flux1_dev_adapter()
    with pytest.raises(LoraFormatError, match="unknown format"):
        export(data, "ckpt")
    with pytest.raises(LoraFormatError, match="damaged"):
        export(data[:100], "comfyui")


@pytest.fixture(scope="module")
def tiny_shapes(tiny_dir):
    return transformer_shapes(tiny_dir)


def test_the_tiny_base_is_found_and_read_without_torch(tiny_dir, model_cache, tiny_shapes):
    assert base_folder("tiny", model_cache) == tiny_dir and base_family("tiny", tiny_dir) == "flux1"
    assert base_family("black-forest-labs/FLUX.2-klein-4B", None) == "flux2-klein"
    assert tiny_shapes["transformer_blocks.0.attn.to_q.weight"] == (32, 32)


def test_a_doppel_adapter_and_its_comfyui_export_are_taken(trained, tiny_shapes):
    data = trained.lora_path.read_bytes()
    upload = check_upload(data, "flux1", tiny_shapes)
    assert (upload.key_format, upload.family, upload.facts["token"]) == ("diffusers", "flux1", "THGH96")
    assert check_upload(export(data, "comfyui"), "flux1", tiny_shapes).key_format == "kohya"


def test_a_pickle_is_refused_unopened(tiny_shapes):
    with pytest.raises(LoraFormatError, match="pickle"):
        check_upload(pickle.dumps({"lora_unet_x.lora_down.weight": [1.0]}), "flux1", tiny_shapes)


def test_a_lora_of_the_other_family_is_refused_by_name(tiny_shapes):
    data, _ = flux1_dev_adapter()
    with pytest.raises(LoraFormatError, match=r"made for FLUX\.1; I draw with FLUX\.2 \[klein\]"):
        check_upload(data, "flux2-klein", None)
    with pytest.raises(LoraFormatError, match=r"made for FLUX\.2 \[klein\]"):
        check_upload(klein_layer(), "flux1", tiny_shapes)


def test_a_lora_of_another_size_is_refused_with_the_layer_and_its_widths(tiny_shapes):
    data, _ = flux1_dev_adapter()  # FLUX.1-dev's widths, for the tiny FLUX.1
    with pytest.raises(LoraFormatError, match="maps 3072 to 3072 features, where this server's FLUX.1 layer maps "
                                              "32 to 32"):
        check_upload(data, "flux1", tiny_shapes)


def test_broken_and_foreign_files_are_refused_with_a_sentence(tiny_shapes):
    one = _f32(np.zeros((2, 32)))
    cases = {
        b"not a safetensors file at all": "not a .safetensors LoRA",
        encode({"lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": one}, {}): "text encoder",
        encode({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": one}, {}): "lacks its up",
        encode({"transformer.transformer_blocks.0.attn.to_q.lokr_w1": one}, {}): "LoKr",
        encode({"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": one,
                "transformer.transformer_blocks.0.attn.to_q.lora_B.weight": _f32(np.zeros((32, 3)))}, {}):
            "ranks differ",
        encode({"transformer.transformer_blocks.0.attn.to_bogus.lora_A.weight": one,
                "transformer.transformer_blocks.0.attn.to_bogus.lora_B.weight": _f32(np.zeros((32, 2)))}, {}):
            "not one of FLUX.1's",
    }
    for data, reason in cases.items():
        with pytest.raises(LoraFormatError, match=reason):
            check_upload(data, "flux1", tiny_shapes)
