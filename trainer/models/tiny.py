"""A tiny random Flux pipeline, built offline and byte-for-byte reproducibly.

It has FLUX.1-dev's geometry (16 latent channels, 8x VAE, 2x2 packing,
guidance embedding, dynamic timestep shift) at toy width, so every code path
that serves the real model runs on it: tests, benchmarks, and anyone trying
doppel without a GPU. Its weights are random, so its images are noise.

Facts and pitfalls behind the numbers: ../shared/notes/tiny-flux.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer.models.tiny_build import FLOW_SCHEDULER, byte_level_symbols

# FLUX.1-dev's VAE constants, kept so the data path is the real one.
FLUX_VAE_SHIFT = 0.1159
FLUX_VAE_SCALE = 0.3611


@dataclass(frozen=True)
class FluxShape:
    """The widths that decide a random Flux pipeline's size."""

    name: str
    heads: int
    head_dim: int
    double_blocks: int
    single_blocks: int
    rope_axes: tuple[int, int, int]
    text_width: int  # T5 d_model, the transformer's joint_attention_dim
    pooled_width: int  # CLIP projection_dim, the transformer's pooled_projection_dim
    vae_channels: tuple[int, int, int, int]
    # What the pipeline runs at by default: doppel reads these back from the marker.
    resolution: int
    inference_steps: int
    max_sequence_length: int


TINY = FluxShape(
    name="tiny",
    heads=2,
    head_dim=16,
    double_blocks=1,
    single_blocks=1,
    rope_axes=(4, 4, 8),
    text_width=32,
    pooled_width=32,
    vae_channels=(8, 16, 16, 16),
    resolution=64,
    inference_steps=4,
    max_sequence_length=64,
)

# Wider, for benchmarks: big enough that the transformer dominates a step.
SMALL = FluxShape(
    name="small",
    heads=8,
    head_dim=64,
    double_blocks=2,
    single_blocks=4,
    rope_axes=(8, 28, 28),
    text_width=256,
    pooled_width=128,
    vae_channels=(16, 32, 32, 32),
    resolution=128,
    inference_steps=4,
    max_sequence_length=64,
)

# FLUX.1-dev's transformer (12B parameters) with two-layer text encoders and a slim VAE:
# the real cost of a training step, for GPU benchmarks with random weights.
DEV = FluxShape(
    name="dev",
    heads=24,
    head_dim=128,
    double_blocks=19,
    single_blocks=38,
    rope_axes=(16, 56, 56),
    text_width=4096,
    pooled_width=768,
    vae_channels=(32, 64, 64, 64),
    resolution=512,
    inference_steps=28,
    max_sequence_length=512,
)

SHAPES = {shape.name: shape for shape in (TINY, SMALL, DEV)}


def _clip_tokenizer():
    from transformers import CLIPTokenizer

    # Every byte bare and word-final, as real CLIP has, so no character is unknown.
    symbols = byte_level_symbols()
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols:
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    merges = [("p", "h"), ("o", "t"), ("ph", "ot"), ("phot", "o</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def _t5_tokenizer():
    from transformers import T5TokenizerFast

    # T5 fixes <pad>=0, </s>=1, <unk>=2; the rest is spelled out so ids never change.
    characters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()[]"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + c, -3.0) for c in characters]
    pieces += [(c, -4.0) for c in characters]
    pieces += [("▁photo", -1.0), ("▁of", -1.0), ("▁a", -1.0)]
    tokenizer = T5TokenizerFast(vocab=pieces, extra_ids=0)
    tokenizer.model_max_length = 512
    return tokenizer


def build_pipeline(shape: FluxShape = TINY, device: str = "cpu"):
    """A FluxPipeline with random weights of the given shape, the same every time.

    `device` is where the weights are made: FLUX.1-dev's shape is built on the GPU.
    """
    import torch

    clip_tokenizer = _clip_tokenizer()
    t5_tokenizer = _t5_tokenizer()
    with torch.device(device):
        return _build_models(shape, clip_tokenizer, t5_tokenizer)


def _build_models(shape: FluxShape, clip_tokenizer, t5_tokenizer):
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(clip_tokenizer),
            hidden_size=shape.pooled_width,
            intermediate_size=shape.pooled_width * 2,
            projection_dim=shape.pooled_width,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            # Must match the tokenizer and must not be 2 (transformers then pools by argmax).
            bos_token_id=clip_tokenizer.bos_token_id,
            eos_token_id=clip_tokenizer.eos_token_id,
            pad_token_id=clip_tokenizer.pad_token_id,
        )
    )
    torch.manual_seed(1)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(t5_tokenizer),
            d_model=shape.text_width,
            d_ff=shape.text_width * 2,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,  # type: ignore[call-arg]  # a PretrainedConfig keyword T5Config omits
        )
    )
    torch.manual_seed(2)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=shape.double_blocks,
        num_single_layers=shape.single_blocks,
        attention_head_dim=shape.head_dim,
        num_attention_heads=shape.heads,
        joint_attention_dim=shape.text_width,
        pooled_projection_dim=shape.pooled_width,
        guidance_embeds=True,
        axes_dims_rope=shape.rope_axes,
    )
    torch.manual_seed(3)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=shape.vae_channels,
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        shift_factor=FLUX_VAE_SHIFT,
        scaling_factor=FLUX_VAE_SCALE,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**FLOW_SCHEDULER),
        vae=vae,
        text_encoder=clip,
        tokenizer=clip_tokenizer,
        text_encoder_2=t5,
        tokenizer_2=t5_tokenizer,
        transformer=transformer,
    )
