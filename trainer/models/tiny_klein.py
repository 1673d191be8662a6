"""A tiny random FLUX.2 [klein] pipeline, built offline and byte-for-byte reproducibly.

It has klein's geometry (8x VAE with a BatchNorm over the 2x2-patchified latents, a Qwen3
text encoder read at layers 9, 18 and 27, 4-axis rope, no guidance embedding, dynamic
timestep shift) at toy width, so the code that serves FLUX.2-klein-base-4B runs on it.
Two variants: `tiny-klein`, an undistilled base (what LoRAs are trained on), and
`tiny-klein-distilled` (`is_distilled`: what a GENERATION_MODEL draws with in few steps).
Both have the same weights, so a base-trained adapter fits the distilled one exactly as the
real pairs do. Its images are noise.

The tokenizer is Qwen2's byte-level BPE built without training: the 256 byte symbols
GPT-2 uses for bytes (each its own token, so no text is unknown), a few merges, and
Qwen's special tokens (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<think>`,
`</think>`), passed as `Qwen2TokenizerFast(vocab=..., merges=...)`, with a chat template
that honours `enable_thinking=False` as Qwen3's does. Facts: ../shared/notes/klein.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trainer.models.tiny_build import FLOW_SCHEDULER, byte_level_symbols

# FLUX.2 [klein]'s scheduler: FLUX.1's with an exponential time shift (the pipeline computes mu per picture).
KLEIN_SCHEDULER = FLOW_SCHEDULER | {"time_shift_type": "exponential"}

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


@dataclass(frozen=True)
class KleinShape:
    """The widths that decide a random klein pipeline's size, and how it runs by default."""

    name: str
    heads: int
    head_dim: int
    double_blocks: int
    single_blocks: int
    rope_axes: tuple[int, int, int, int]
    text_width: int  # Qwen3 hidden size; the transformer reads 3 of its layers side by side
    text_layers: int  # at least 27: the pipeline reads layers 9, 18 and 27
    latent_channels: int
    vae_channels: tuple[int, ...]
    distilled: bool
    resolution: int
    inference_steps: int
    max_sequence_length: int
    family: str = "flux2-klein"


TINY_KLEIN = KleinShape(
    name="tiny-klein",
    heads=2,
    head_dim=16,
    double_blocks=1,
    single_blocks=1,
    rope_axes=(4, 4, 4, 4),
    text_width=16,
    text_layers=27,
    latent_channels=4,
    vae_channels=(8, 16, 16, 16),
    distilled=False,
    resolution=64,
    inference_steps=4,
    max_sequence_length=64,
)
TINY_KLEIN_DISTILLED = KleinShape(**asdict(TINY_KLEIN) | {"name": "tiny-klein-distilled", "distilled": True})

# FLUX.2-klein-base-4B's transformer (3.9B parameters), from its published transformer/config.json:
# 5 double and 20 single blocks, 24 heads of 128, in_channels 128 (32 latent channels, 2x2), joint
# attention 7680 (= 3 x Qwen3-4B's 2560), rope (32, 32, 32, 32), mlp_ratio 3, no guidance embedding.
# The text encoder and VAE are slimmed: benchmarks time the transformer's step.
KLEIN_4B = KleinShape(
    name="klein-4b",
    heads=24,
    head_dim=128,
    double_blocks=5,
    single_blocks=20,
    rope_axes=(32, 32, 32, 32),
    text_width=2560,
    text_layers=27,
    latent_channels=32,
    vae_channels=(32, 64, 64, 64),
    distilled=False,
    resolution=512,
    inference_steps=50,
    max_sequence_length=512,
)

SHAPES = {shape.name: shape for shape in (TINY_KLEIN, TINY_KLEIN_DISTILLED, KLEIN_4B)}


def qwen_tokenizer():
    """A Qwen2-style byte-level BPE tokenizer built offline (see the module's docstring)."""
    from transformers import Qwen2TokenizerFast

    vocab: dict[str, int] = {}
    for symbol in byte_level_symbols():
        vocab.setdefault(symbol, len(vocab))
    merges = [("p", "h"), ("o", "t"), ("ph", "ot"), ("Ġ", "o"), ("Ġo", "f"), ("phot", "o")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in SPECIAL_TOKENS:
        vocab.setdefault(special, len(vocab))
    tokenizer = Qwen2TokenizerFast(
        vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>"  # noqa: S106  (tokenizer marks)
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 512
    return tokenizer


def build_pipeline(shape: KleinShape = TINY_KLEIN, device: str = "cpu"):
    """A Flux2KleinPipeline with random weights of the given shape, the same every time."""
    import torch

    tokenizer = qwen_tokenizer()
    with torch.device(device):
        return _build_models(shape, tokenizer)


def _build_models(shape: KleinShape, tokenizer):
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    text_encoder = Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=len(tokenizer),
            hidden_size=shape.text_width,
            intermediate_size=shape.text_width * 2,
            num_hidden_layers=shape.text_layers,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=8,
            max_position_embeddings=max(512, shape.max_sequence_length),
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    torch.manual_seed(2)
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=shape.latent_channels * 4,
        num_layers=shape.double_blocks,
        num_single_layers=shape.single_blocks,
        attention_head_dim=shape.head_dim,
        num_attention_heads=shape.heads,
        joint_attention_dim=shape.text_width * 3,
        timestep_guidance_channels=256 if shape.head_dim >= 128 else 32,
        axes_dims_rope=shape.rope_axes,
        guidance_embeds=False,
    )
    torch.manual_seed(3)
    vae = AutoencoderKLFlux2(
        block_out_channels=shape.vae_channels,
        layers_per_block=1,
        latent_channels=shape.latent_channels,
        norm_num_groups=8,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
    )
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**KLEIN_SCHEDULER),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=shape.distilled,
    )
