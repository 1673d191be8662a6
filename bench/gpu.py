"""GPU figures for issue #6: training per memory mode, and compiled generation with adapter hotswap.

    python bench/gpu.py            # on a GPU: FLUX.1-dev's real transformer shape, random weights, no download
    python bench/gpu.py --model klein-4b   # FLUX.2 [klein] base 4B's real transformer shape (its published config)
    python bench/gpu.py --smoke    # anywhere: the same code paths on the tiny model (on the CPU without a GPU)

Training, for each memory mode (bf16, fp8, nf4) at 512 and 1024 px, rank 16, batch 1, with the
gradient checkpointing the planner gives that mode on the card it is meant for (bf16: none, as
on an 80 GB card; fp8 and nf4: on, as on 24 and 12 GB cards): seconds per step, peak GPU memory,
and model FLOP utilisation (MFU). Each mode runs in its own process, so its peak is its own.

    FLOPs of a step = 6 * P * T + 3 * 4 * T^2 * d * layers
      P: parameters in the transformer's Linear layers (11.9B for FLUX.1-dev, 3.9B for klein 4B)
      T: tokens (image tokens (resolution/16)^2 + 512 text tokens), d: 3072, layers: 19 + 38 (klein 4B: 5 + 20)
      6 P T: forward (2) and backward (4) of every matmul; 4 T^2 d per layer: attention's
      QK^T and AV forward, x3 with its backward. MFU = FLOPs / step time / the GPU's bf16 dense
      peak (H100 SXM 989 TFLOP/s). Quantized modes dequantize to bf16 and run bf16 matmuls.
    mfu_frozen counts 4 P T instead of 6 P T: the frozen base needs no weight gradients, so it
    is the share of the GPU that the work this run really has to do keeps busy.

Projected time for 1000 steps at 512 px = caching + 1000 * s_per_step (the target: 300 s).
Caching here uses two-layer text encoders; T5-XXL adds about a second for twenty photos.

Generation, 1024x1024 at 28 steps: uncompiled bf16; compiled (the Generator's fixed hotswap
slots) after its warm-up; and compiled fp8 where the GPU has fp8 matmuls. Switching adapters
between two members already read (`switch_s`, the target: 50 ms or less) and reading a new one
from disk (`first_load_s`), with recompilation an error (`torch._dynamo.config.patch(error_on_recompile=True)`).

The last line holds every figure as key=value.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.shapes import base_of, build

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

MODES = ("bf16", "fp8", "nf4")
CHECKPOINTING = {"bf16": False, "fp8": True, "nf4": True}  # as the planner runs each mode on its card
RANK = 16
# bf16 dense peak, TFLOP/s, by the name CUDA reports.
PEAK_TFLOPS = {"H100 SXM": 989, "H100 80GB HBM3": 989, "H200": 989, "H100 PCIe": 756, "H100 NVL": 835,
               "A100": 312, "L40S": 362, "L4": 121, "RTX 4090": 165, "A10G": 70, "RTX 3090": 71}
SMOKE_NOTE = "SMOKE: the tiny model on the CPU; these figures say nothing about any GPU"
# --model: the real shape, and the tiny model of the same family for --smoke. Generation on klein uses
# the distilled variant of the shape (4 steps), as GENERATION_MODEL would.
MODELS = {"flux1-dev": ("dev", "tiny"), "klein-4b": ("klein-4b", "tiny-klein")}


def _peak_tflops(override: float | None) -> float | None:
    import torch

    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    return next((tflops for key, tflops in PEAK_TFLOPS.items() if key in name), None)


def _matmul_params(transformer) -> int:
    import torch

    return sum(m.in_features * m.out_features for m in transformer.modules() if isinstance(m, torch.nn.Linear))


def step_flops(params: int, tokens: int, hidden: int, layers: int, weight_grads: bool = True) -> float:
    return (6 if weight_grads else 4) * params * tokens + 3 * 4 * tokens**2 * hidden * layers


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def measure_training(shape_name: str, mode: str, resolutions: list[int], steps: int, device: str,
                     peak_tflops: float | None) -> dict:
    import torch

    from contract import Step as StepEvent
    from tests.photos import write_photos
    from trainer.models import memory
    from trainer.training.config import TrainConfig
    from trainer.training.train import train_lora

    cuda = device == "cuda"
    pipe = build(shape_name, device)
    transformer = pipe.transformer
    params = _matmul_params(transformer)  # before quantization: quantized Linears are other classes
    hidden = transformer.config.num_attention_heads * transformer.config.attention_head_dim
    layers = transformer.config.num_layers + transformer.config.num_single_layers
    # Quantize once; each run below finds the transformer already in the mode (quantization is for good).
    memory.apply_memory_mode(transformer, mode, torch.device(device))
    result = {"mode": mode, "gradient_checkpointing": CHECKPOINTING[mode], "matmul_params": params}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        photos = write_photos(scratch / "photos")
        for resolution in resolutions:
            events: list[StepEvent] = []
            memory.free_memory()
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            first_step: list[float] = []

            def on_event(event, events=events, first_step=first_step, started=started):
                if isinstance(event, StepEvent):
                    if not first_step:
                        first_step.append(time.perf_counter() - started)  # reading, caching, LoRA set-up
                    events.append(event)

            train_lora(
                TrainConfig.from_options(
                    base=shape_name, images=photos, token="THGH96", out=scratch / f"out-{resolution}",
                    steps=steps, rank=RANK, resolution=resolution, checkpoint_every=steps + 1,
                    sample_every=0, time_steps=True, device=device, memory_mode=mode,
                    gradient_checkpointing=CHECKPOINTING[mode]),
                on_event=on_event,
                pipeline=pipe,
                base=base_of(shape_name, resolution, resolution),
            )
            _sync()
            warm = events[max(1, len(events) // 5):]  # the first steps pay for allocation and kernel choice
            step_times = [b.elapsed_s - a.elapsed_s for a, b in itertools.pairwise(warm)]
            s_per_step = statistics.median(step_times)
            tokens = (resolution // 16) ** 2 + base_of(shape_name, resolution, resolution).max_sequence_length
            figures = {
                "s_per_step": round(s_per_step, 4),
                "setup_s": round(first_step[0], 2),
                "projected_1000_steps_s": round(first_step[0] + 1000 * s_per_step, 1),
            }
            if cuda:
                figures["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            if peak_tflops:
                for key, grads in (("mfu", True), ("mfu_frozen", False)):
                    flops = step_flops(params, tokens, hidden, layers, grads)
                    figures[key] = round(flops / s_per_step / (peak_tflops * 1e12), 3)
            for key, value in figures.items():
                result[f"{resolution}_{key}"] = value
    return result


def _random_adapter(pipe, folder: Path, seed: int, rank: int = RANK) -> Path:
    """A LoRA file of the transformer's shape with small random weights, as training writes it."""
    import torch
    from peft import LoraConfig

    from trainer.models.families import family_of_pipeline
    from trainer.training.lora_file import lora_config_dict, save_lora

    family = family_of_pipeline(pipe)
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in pipe.transformer.named_modules():
        targeted = any(name == t or name.endswith("." + t) for t in family.lora_targets)
        if isinstance(module, torch.nn.Linear) and targeted:
            scale = module.in_features**0.5
            state[f"{name}.lora_A.weight"] = torch.randn(rank, module.in_features, generator=generator) / scale
            state[f"{name}.lora_B.weight"] = torch.randn(module.out_features, rank, generator=generator) * 1e-3
    folder.mkdir(parents=True, exist_ok=True)
    config = lora_config_dict(LoraConfig(r=rank, lora_alpha=rank, target_modules=list(family.lora_targets)))
    return save_lora(folder, state, config, {"rank": rank, "family": family.name})


def measure_generation(shape_name: str, fp8: bool, device: str, size: int, repeats: int) -> dict:
    import torch

    from contract import AdapterRef, GenerateRequest, adapter_identity
    from trainer.generation.generator import Generator

    cuda = device == "cuda"
    if fp8 and cuda and torch.cuda.get_device_capability() < (8, 9):
        return {"fp8": fp8, "skipped": "no fp8 matmuls before compute capability 8.9"}
    pipe = build(shape_name, device, for_generation=True)
    base = base_of(shape_name, size, size, for_generation=True)
    steps = base.inference_steps
    result = {"fp8": fp8, "size": size, "steps": steps}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        adapters = [_random_adapter(pipe, scratch / f"member{k}", seed=k) for k in range(3)]

        files = {adapter_identity(path.read_bytes()): path for path in adapters}

        def seconds(generator, uses=()):
            request = GenerateRequest(base=base.name, prompt="photo of THGH96 on a mountain", adapters=tuple(uses),
                                      seed=1, steps=steps)
            _sync()
            started = time.perf_counter()
            generator.generate(request, files)
            _sync()
            return time.perf_counter() - started

        if not fp8:  # the uncompiled pipeline first, before compiling changes it
            eager = Generator(base, device=device, pipeline=pipe, max_adapters=8)
            seconds(eager)
            result["eager_s_per_image"] = round(statistics.median(seconds(eager) for _ in range(repeats)), 3)
            del eager

        started = time.perf_counter()
        generator = Generator(base, device=device, pipeline=pipe, max_adapters=8, compile=True, fp8=fp8,
                              hotswap_rank=RANK)
        result["setup_s"] = round(time.perf_counter() - started, 2)
        result["warm_up_s"] = round(generator.warm_up(), 2)
        uses = [AdapterRef(f"member{k}", identity) for k, identity in enumerate(files)]
        with torch._dynamo.config.patch(error_on_recompile=True):
            result["compiled_s_per_image"] = round(statistics.median(seconds(generator) for _ in range(repeats)), 3)
            first_loads, switches, with_adapter = [], [], []
            for use in uses:  # each member's first picture: read from disk, then hotswapped
                with_adapter.append(seconds(generator, [use]))
                first_loads.append(generator.last_switch_s)
            for _ in range(repeats):
                for use in uses:  # members taking turns: already held, only swapped
                    with_adapter.append(seconds(generator, [use]))
                    switches.append(generator.last_switch_s)
        result["compiled_s_per_image_with_adapter"] = round(statistics.median(with_adapter), 3)
        result["switch_s"] = round(statistics.median(switches), 4)
        result["switch_max_s"] = round(max(switches), 4)
        result["first_load_s"] = round(statistics.median(first_loads), 4)
        result["recompiles"] = 0  # error_on_recompile would have stopped the run
        if cuda:
            result["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return result


def _child(args) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = MODELS[args.model][1 if args.smoke else 0]
    kind, _, what = args.one.partition(":")
    if kind == "train":
        resolutions = [int(r) for r in args.resolutions.split(",")]
        return measure_training(shape, what, resolutions, args.steps, device, _peak_tflops(args.peak_tflops))
    return measure_generation(shape, what == "fp8", device, args.size, args.repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the tiny model, on the CPU if there is no GPU")
    parser.add_argument("--model", choices=tuple(MODELS), default="flux1-dev", help="the shape (default: flux1-dev)")
    parser.add_argument("--modes", default=",".join(MODES), help="memory modes to train in")
    parser.add_argument("--resolutions", default=None, help="default: 512,1024 (smoke: 64,128)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 20; smoke 6)")
    parser.add_argument("--size", type=int, default=None, help="picture side (default 1024; smoke 64)")
    parser.add_argument("--repeats", type=int, default=None, help="timed pictures per figure (default 3)")
    parser.add_argument("--no-generation", action="store_true")
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's bf16 dense peak, if not known")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one measurement, printed as JSON
    args = parser.parse_args()
    args.resolutions = args.resolutions or ("64,128" if args.smoke else "512,1024")
    args.steps = args.steps or (6 if args.smoke else 20)
    args.size = args.size or (64 if args.smoke else 1024)
    args.repeats = args.repeats or (2 if args.smoke else 3)

    if args.one:
        print(json.dumps(_child(args)))
        return 0

    import torch

    if not torch.cuda.is_available() and not args.smoke:
        print("no GPU here: nothing to measure. bench/gpu.py needs a CUDA GPU (an H100 for the issue's targets);")
        print("`python bench/gpu.py --smoke` runs the same code paths on the tiny model on this CPU.")
        return 0
    if args.smoke:
        print(SMOKE_NOTE if not torch.cuda.is_available() else "SMOKE: the tiny model on the GPU")
    else:
        memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
        print(f"device: {torch.cuda.get_device_name()}, {memory_gib:.1f} GiB")

    jobs = [] if args.no_training else [f"train:{mode}" for mode in args.modes.split(",")]
    jobs += [] if args.no_generation else ["generate:bf16", "generate:fp8"]
    figures = {"smoke": args.smoke} if args.smoke else {}
    for job in jobs:
        command = [sys.executable, __file__, "--one", job, "--resolutions", args.resolutions, "--steps",
                   str(args.steps), "--size", str(args.size), "--repeats", str(args.repeats), "--model", args.model]
        command += ["--smoke"] if args.smoke else []
        command += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
        started = time.perf_counter()
        child = subprocess.run(command, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(f"{job}: failed\n{child.stderr[-3000:]}", file=sys.stderr)
            figures[f"{job.replace(':', '_')}_failed"] = True
            continue
        result = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{job} ({time.perf_counter() - started:.0f} s): {json.dumps(result)}", flush=True)
        prefix = job.split(":")[1] if job.startswith("train") else f"gen_{job.split(':')[1]}"
        for key, value in result.items():
            if key not in ("mode", "fp8"):
                figures[f"{prefix}_{key}"] = value
    if args.smoke:
        print(SMOKE_NOTE)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))
    return 1 if any(k.endswith("_failed") for k in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
