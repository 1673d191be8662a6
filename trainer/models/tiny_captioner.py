"""A tiny random Florence-2, built offline and byte-for-byte reproducibly, as the tiny Flux is.

It has Florence-2's parts (a DaViT image tower, a BART encoder-decoder, a byte-level BPE tokenizer
with `<image>` and `<loc_*>` tokens, Florence-2's processor) at toy width, and is saved with
`save_pretrained`, so it loads through the very calls that load microsoft/Florence-2-base. Its
weights are random: its captions are gibberish, which is all the plumbing needs.

Facts and pitfalls behind the numbers: ../shared/notes/inpaint-captions.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from contract.atomic import atomic_directory
from trainer.models.tiny_build import byte_level_symbols

TINY_CAPTIONER_MARKER = "doppel_tiny_captioner.json"
IMAGE_SIZE = 64
STRIDES = (4, 2)
# The processor puts this many image tokens in the prompt; the tower makes (size / strides)^2 + 1 features.
IMAGE_SEQ_LENGTH = (IMAGE_SIZE // (STRIDES[0] * STRIDES[1])) ** 2 + 1
LOCATIONS = 1000  # <loc_0> .. <loc_999>, as Florence-2's tokenizer has


def _tokenizer():
    from transformers import RobertaTokenizer

    # Every byte is a token, so no text is unknown; the specials are RoBERTa's, ids fixed by order.
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in byte_level_symbols():
        vocab.setdefault(symbol, len(vocab))
    merges = [("Ġ", "a"), ("p", "h"), ("ph", "o"), ("pho", "t"), ("phot", "o")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    tokenizer = RobertaTokenizer(vocab=vocab, merges=merges, extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_tokens([f"<loc_{i}>" for i in range(LOCATIONS)], special_tokens=True)
    return tokenizer


def build_captioner():
    """(model, processor): a Florence2ForConditionalGeneration with random weights, the same every time."""
    import torch
    from transformers import (
        BartConfig,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
        Florence2VisionConfig,
    )

    tokenizer = _tokenizer()
    processor = Florence2Processor(
        image_processor=CLIPImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            do_center_crop=False,
            image_seq_length=IMAGE_SEQ_LENGTH,
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        ),
        tokenizer=tokenizer,
        post_processor_config={"pure_text": {}},
    )
    width = 16
    text = BartConfig(
        vocab_size=len(tokenizer),
        d_model=width,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=width * 2,
        decoder_ffn_dim=width * 2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    vision = Florence2VisionConfig(
        depths=(1, 1),
        patch_size=(7, 3),
        patch_stride=STRIDES,
        patch_padding=(3, 1),
        patch_prenorm=(False, True),
        embed_dim=(16, 32),
        num_heads=(1, 2),
        num_groups=(1, 2),
        window_size=4,
        drop_path_rate=0.0,
        projection_dim=width,
        max_position_embeddings=IMAGE_SIZE // (STRIDES[0] * STRIDES[1]),
    )
    torch.manual_seed(0)
    model = Florence2ForConditionalGeneration(
        Florence2Config(
            text_config=text.to_dict(),
            vision_config=vision.to_dict(),
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        )
    )
    return model.eval(), processor


def write_captioner(directory: Path) -> Path:
    """Build the captioner and save model and processor with `save_pretrained`, atomically."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    directory = Path(directory)
    with atomic_directory(directory, marker=TINY_CAPTIONER_MARKER) as staging:
        model, processor = build_captioner()
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        (staging / TINY_CAPTIONER_MARKER).write_text(json.dumps({"image_size": IMAGE_SIZE}) + "\n")
    return directory


def is_tiny_captioner(directory: Path) -> bool:
    return (Path(directory) / TINY_CAPTIONER_MARKER).is_file()
