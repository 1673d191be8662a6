"""Memory modes: the planner's choices, and training on a lean base whose LoRA still loads in plain diffusers."""

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from safetensors import safe_open

from contract import AdapterRef, GenerateRequest, Phase, PhaseName, adapter_identity
from tests.conftest import TOKEN
from trainer.errors import DoppelError
from trainer.generation.generator import Generator
from trainer.models import memory
from trainer.models.families import FLUX1, FLUX2_KLEIN
from trainer.training.config import TrainConfig
from trainer.training.train import train_lora

# (GPU GiB, resolution, override) -> (mode, gradient checkpointing). Usable memory of real cards:
# H100 80 GB 79.1, L40S 44.4, A100 40 GB 39.4, RTX 4090 23.6, A10G 22.0, RTX 4080 15.6, T4 14.6, RTX 3060 11.7.
PLANS = [
    ((79.1, 512, None), ("bf16", False)),
    ((79.1, 1024, None), ("bf16", False)),
    ((44.4, 512, None), ("bf16", False)),
    ((44.4, 1024, None), ("bf16", True)),
    ((39.4, 512, None), ("bf16", True)),
    ((39.4, 1024, None), ("bf16", True)),
    ((23.6, 512, None), ("fp8", True)),
    ((23.6, 1024, None), ("fp8", True)),
    ((22.0, 1024, None), ("fp8", True)),
    ((15.6, 512, None), ("fp8", True)),
    ((14.6, 512, None), ("nf4", True)),
    ((11.7, 512, None), ("nf4", True)),
    ((11.7, 1024, None), ("nf4", True)),  # the leanest, though it may not fit
    ((8.0, 512, None), ("nf4", True)),
    ((79.1, 512, "nf4"), ("nf4", False)),  # an override is obeyed; checkpointing only if needed
    ((79.1, 512, "auto"), ("bf16", False)),
    ((23.6, 512, "bf16"), ("bf16", True)),
    ((23.6, 512, "fp8"), ("fp8", True)),
    ((None, 512, None), ("fp32", False)),  # no GPU: the CPU's plan
    ((None, 64, "nf4"), ("nf4", False)),
]


@pytest.mark.parametrize(("given", "chosen"), PLANS)
def test_the_planner_chooses_by_gpu_memory_and_resolution(given, chosen):
    gib, resolution, override = given
    plan = memory.plan_memory(gib, resolution, override, available=set(memory.MODES))
    assert (plan.mode, plan.gradient_checkpointing) == chosen, plan.reason
    assert plan.mode in plan.reason and "\n" not in plan.reason
    assert plan.eight_bit_adam == (gib is not None and plan.mode in ("fp8", "nf4"))
    assert plan.encoders_on_cpu == (gib is None or gib < memory.ENCODERS_GIB)
    if gib is not None and override in (None, "auto"):
        fits = plan.estimate_gib <= gib
        assert fits or "may still not fit" in plan.reason


def test_the_planner_uses_only_modes_whose_library_is_installed_and_refuses_unknown_ones():
    plan = memory.plan_memory(23.6, 512, None, available={"fp32", "bf16"})
    assert (plan.mode, plan.eight_bit_adam) == ("bf16", False) and "may still not fit" in plan.reason
    with pytest.raises(DoppelError, match="needs torchao"):
        memory.plan_memory(23.6, 512, "fp8", available={"fp32", "bf16"})
    with pytest.raises(DoppelError, match="must be one of"):
        memory.plan_memory(23.6, 512, "int3")
    with pytest.raises(DoppelError, match="memory mode must be one of"):
        TrainConfig.from_options(base="tiny", images=".", token=TOKEN, out=".", memory_mode="fp4")


def test_the_modes_a_request_may_name_are_the_ones_this_trainer_applies():
    from contract.requests import MEMORY_MODES

    assert memory.OVERRIDES is MEMORY_MODES and set(MEMORY_MODES) == {"auto", *memory.MODES}


def test_freeing_memory_works_without_an_accelerator():
    memory.free_memory()  # diffusers' helper: garbage collection, then the accelerator's cache, if any


def test_the_command_line_takes_a_memory_mode_and_leaves_checkpointing_to_the_plan():
    from trainer.cli import _parser

    common = ["train", "--images", ".", "--token", TOKEN, "--out", "."]
    args = _parser().parse_args(common)
    assert args.memory_mode is None and args.gradient_checkpointing is None
    args = _parser().parse_args(common + ["--memory-mode", "nf4", "--no-gradient-checkpointing"])
    assert args.memory_mode == "nf4" and args.gradient_checkpointing is False


def test_the_estimates_match_the_published_figures():
    # Flux LoRA trainers report about 24 GB with an fp8 base and about 9 GB with NF4 at 512 px.
    assert memory.estimate_gib("fp8", 512, True) < 22
    assert memory.estimate_gib("nf4", 512, True) < 11.5
    assert memory.estimate_gib("bf16", 512, True) > 24


def _snapshot(transformer) -> dict[str, torch.Tensor]:
    """Every base tensor as plain values (quantized ones dequantized), by its name without peft's wrapper."""
    taken = {}
    for name, value in transformer.state_dict().items():
        if ".lora_" in name:
            continue
        if type(value) is not torch.Tensor and hasattr(value, "dequantize"):
            value = value.dequantize()
        taken[name.replace(".base_layer", "")] = value.detach().clone()
    return taken


def _fresh(tiny_dir):
    return FluxPipeline.from_pretrained(tiny_dir, dtype=torch.float32, local_files_only=True)


def _picture(pipe):
    image = pipe(f"photo of {TOKEN}", height=64, width=64, num_inference_steps=4, max_sequence_length=64,
                 generator=torch.Generator().manual_seed(7)).images[0]
    return np.asarray(image, dtype=np.int16)


LORA_LAYER = {"bf16": "Linear", "fp8": "TorchaoLoraLinear", "nf4": "Linear4bit"}
BASE_WEIGHT = {"bf16": "Parameter", "fp8": "Float8Tensor", "nf4": "Params4bit"}


@pytest.mark.parametrize("mode", ["bf16", "fp8", "nf4"])
def test_each_mode_trains_only_the_lora_and_its_adapter_loads_in_plain_diffusers(mode, tiny_dir, photos, tmp_path):
    if memory.MODES[mode].library:
        pytest.importorskip(memory.MODES[mode].library, reason=f"{mode} needs {memory.MODES[mode].library}")
    pipe = _fresh(tiny_dir)
    events, seen = [], {}

    def watch(event):
        events.append(event)
        if isinstance(event, Phase) and event.name == PhaseName.TRAINING:  # the lean base with its LoRA, untrained
            block = pipe.transformer.transformer_blocks[0]
            seen["layer"] = type(block.attn.to_q).__name__
            seen["weight"] = type(block.attn.to_q.base_layer.weight).__name__
            seen["trainable"] = {n for n, p in pipe.transformer.named_parameters() if p.requires_grad}
            seen["before"] = _snapshot(pipe.transformer)

    result = train_lora(
        TrainConfig.from_options(base="tiny", images=photos, token=TOKEN, out=tmp_path, steps=3, lr=3e-2,
                                 memory_mode=mode, gradient_checkpointing=True, checkpoint_every=100, sample_every=3,
                                 sample_prompts=("photo of [trigger]",)),
        on_event=watch,
        pipeline=pipe,
    )
    assert isinstance(events[0], Phase) and events[0].name == PhaseName.PLANNING and mode in events[0].detail
    assert result.memory.mode == mode and memory.mode_of(pipe.transformer) == mode
    assert (seen["layer"], seen["weight"]) == (LORA_LAYER[mode], BASE_WEIGHT[mode])
    assert seen["trainable"] and all(".lora_" in name for name in seen["trainable"])
    after = _snapshot(pipe.transformer)
    assert after.keys() == seen["before"].keys()
    assert all(torch.equal(seen["before"][k], after[k]) for k in after), "a base weight changed"

    with safe_open(result.lora_path, framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys()}  # noqa: SIM118 (safe_open is no dict) == {torch.float32}
    plain = _fresh(tiny_dir)
    base_picture = _picture(plain)
    plain.load_lora_weights(result.lora_path.parent, adapter_name="me")
    assert np.abs(_picture(plain) - base_picture).mean() > 1.0


def test_a_borrowed_quantized_base_is_kept_when_leaner_and_replaced_when_another_mode_is_asked(
    tiny_dir, photos, tmp_path
):
    pytest.importorskip("torchao", reason="fp8 needs torchao")
    pipe = _fresh(tiny_dir)
    config = {"base": "tiny", "images": photos, "token": TOKEN, "steps": 1, "checkpoint_every": 100, "sample_every": 0}
    train_lora(TrainConfig.from_options(**config, out=tmp_path / "a", memory_mode="fp8"), pipeline=pipe)
    plans = []

    def record(event):
        if isinstance(event, Phase) and event.name == PhaseName.PLANNING:
            plans.append(event.detail)

    result = train_lora(TrainConfig.from_options(**config, out=tmp_path / "b"), on_event=record, pipeline=pipe)
    assert result.memory.mode == "fp8" and "kept" in plans[-1]  # the CPU's plan is fp32; fp8 is already there
    train_lora(TrainConfig.from_options(**config, out=tmp_path / "c", memory_mode="bf16"), pipeline=pipe)
    assert memory.mode_of(pipe.transformer) == "bf16"
    assert type(pipe.transformer.transformer_blocks[0].attn.to_q.weight) is torch.nn.Parameter


def test_fp8_generation_makes_pictures_with_adapters(trained, tiny_dir):
    pytest.importorskip("torchao", reason="fp8 needs torchao")
    generator = Generator("tiny", max_adapters=4, fp8=True)
    assert type(generator.pipe.transformer.transformer_blocks[0].attn.to_q.weight).__name__ == "Float8Tensor"
    request = GenerateRequest(base="tiny", prompt=f"photo of {TOKEN}", seed=3)
    plain = np.asarray(generator.generate(request)[0].image, dtype=np.int16)
    me = AdapterRef("me", adapter_identity(trained.lora_path.read_bytes()))
    with_me = GenerateRequest(base="tiny", prompt=f"photo of {TOKEN}", adapters=(me,), seed=3)
    drawn = np.asarray(generator.generate(with_me, {me.identity: trained.lora_path})[0].image, dtype=np.int16)
    assert np.abs(drawn - plain).mean() > 1.0
    full = np.asarray(Generator("tiny", max_adapters=4).generate(request)[0].image, dtype=np.int16)
    assert np.abs(full - plain).mean() < 8  # fp8 weights round; the picture stays close


def test_klein_4b_trains_unquantized_on_a_24_gb_card_where_flux1_dev_needs_fp8():
    everything = set(memory.MODES)
    klein = memory.plan_memory(23.6, 512, None, available=everything, model=FLUX2_KLEIN.model_size("x/base-4B"))
    dev = memory.plan_memory(23.6, 512, None, available=everything, model=FLUX1.model_size("x/FLUX.1-dev"))
    assert (klein.mode, klein.gradient_checkpointing, dev.mode) == ("bf16", False, "fp8")
    assert not klein.encoders_on_cpu and klein.estimate_gib <= 23.6
    nine = FLUX2_KLEIN.model_size("black-forest-labs/FLUX.2-klein-base-9B")
    assert nine is memory.KLEIN_9B
    assert memory.generation_gib(False, nine) > memory.generation_gib(False, memory.KLEIN_4B)


def test_the_generation_plan_counts_reference_photos_tokens():
    four = memory.reference_tokens(4, 512)
    assert four == 4 * 1024 and memory.reference_tokens(0, 512) == 0
    alone = memory.generation_gib(False, memory.KLEIN_4B)
    assert memory.generation_gib(False, memory.KLEIN_4B, four) == pytest.approx(alone + 4096 * 0.23 / 1024)
    nine = memory.generation_gib(False, memory.KLEIN_9B, four) - memory.generation_gib(False, memory.KLEIN_9B)
    assert nine > memory.generation_gib(False, memory.KLEIN_4B, four) - alone  # wider blocks, more per token
