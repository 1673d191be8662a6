"""Train a person's LoRA for Flux: one loop, readable top to bottom.

The shape follows diffusers' examples/dreambooth/train_dreambooth_lora_flux.py:
cache latents and text embeddings, add a peft LoRA to the frozen transformer,
and regress Flux's velocity at logit-normal, resolution-shifted noise levels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from diffusers.optimization import get_scheduler
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

from trainer import memory
from trainer.base_model import BaseModel, load_pipeline, load_transformer, pick_device, pick_dtype, resolve_base
from trainer.caching import CachedExample, cache_training_set, release_encoders
from trainer.checkpoint import (
    Checkpoint,
    Start,
    adapter_path,
    checkpoint_path,
    load_checkpoint,
    load_start,
    save_checkpoint,
)
from trainer.config import TrainConfig
from trainer.dataset import load_training_set
from trainer.errors import CheckpointError, TrainingCancelled, TrainingPaused
from trainer.flow import flow_matching_loss, sample_sigmas
from trainer.lora_file import lora_config_dict, save_lora
from trainer.progress import CancelToken, CheckpointEvent, Event, PhaseEvent, SampleEvent, StepEvent
from trainer.sampling import render_samples
from trainer.settings import trainer_settings
from trainer.images import save_png
from trainer.tiny import NOISE_WARNING
from trainer.timeline import timeline

log = logging.getLogger(__name__)

ADAPTER = "doppel"


@dataclass
class TrainResult:
    lora_path: Path
    steps: int
    final_loss: float
    dataset_sha256: str
    seconds: float
    samples: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    memory: memory.MemoryPlan | None = None  # how the base was made to fit
    timeline: Path | None = None  # samples through the run, side by side
    start_step: int = 0  # the steps the adapter it built on already had (`start_from`)


def train_lora(
    config: TrainConfig,
    on_event: Callable[[Event], None] | None = None,
    cancel: CancelToken | None = None,
    pipeline=None,
    base: BaseModel | None = None,
) -> TrainResult:
    """Train and write `pytorch_lora_weights.safetensors` into `config.out`.

    `pipeline` (and its `base`) let a long-lived worker or a benchmark pass the
    FluxPipeline it already holds; the adapter is removed from it again when
    training ends, however it ends. Its text encoders and VAE are left on the CPU, and its
    transformer in the memory mode this run used (quantization cannot be undone in place; a
    later run that needs another mode loads a fresh transformer into it).

    With `config.start_from`, the run builds on an earlier adapter: its LoRA (and a checkpoint's
    optimizer state and random state) is where training starts, and steps count on from its
    step, so "train 500 more" from step 750 runs steps 751 to 1250.

    The first event is the memory plan (`PhaseEvent("planning", reason)`).
    """
    emit = on_event or (lambda event: None)
    started = time.monotonic()
    base = base or resolve_base(config.base)
    resolution = config.resolution or base.train_resolution
    device = pick_device(config.device)
    dtype = pick_dtype(device)  # what the pipeline is loaded in; the memory mode may change the transformer's
    override = config.memory_mode or trainer_settings().memory_mode
    plan = memory.plan_memory(memory.gpu_gib(device), resolution, override, batch_size=config.batch_size)
    emit(PhaseEvent("planning", plan.reason))

    # 1. Read and check every photo before loading anything heavy: bad files fail fast.
    emit(PhaseEvent("reading", str(config.images)))
    training_set = load_training_set(config.images, config.token, resolution)
    record = config.to_record() | {"resolution": resolution, "dataset_sha256": training_set.sha256}
    if config.resume:
        # The run's own checkpoint holds everything, the step it started from included.
        resumed, start = load_checkpoint(config.resume, record), None
        record["start_step"] = resumed.record.get("start_step", 0)
    else:
        resumed = None
        start = load_start(config.start_from, record) if config.start_from else None
        record["start_step"] = start.step if start else 0

    # 2. The base model. On a GPU in bf16; the LoRA's own weights stay in fp32.
    emit(PhaseEvent("loading", base.name))
    pipe = pipeline if pipeline is not None else load_pipeline(base, dtype)
    try:
        return _train(
            config, base, resolution, device, dtype, plan, override, pipe, training_set, record, start, resumed, emit,
            cancel, started,
        )
    finally:
        if pipeline is not None:
            _remove_adapter(pipe.transformer)


def _train(
    config, base, resolution, device, dtype, plan, override, pipe, training_set, record, start: Start | None,
    resumed, emit, cancel, started,
):
    config.out.mkdir(parents=True, exist_ok=True)
    start_step = record["start_step"]
    last_step = start_step + config.steps

    # 3. Cache latents and text embeddings once, then free the encoders' memory. The transformer
    # goes to the GPU only after this, so the encoders and it are never there together (a lean
    # plan also parks a borrowed transformer on the CPU meanwhile).
    emit(PhaseEvent("caching", f"{len(training_set.images)} images at {resolution} px"))
    if plan.lean and _on_accelerator(pipe.transformer):
        pipe.transformer.to("cpu")
        memory.free_memory()
    sample_prompts = config.sample_prompts_for_token() if config.sample_every else []
    examples, prompts = cache_training_set(
        pipe,
        training_set,
        device,
        base.max_sequence_length,
        extra_prompts=sample_prompts + [""],
        text_device=torch.device("cpu") if plan.encoders_on_cpu else None,
    )
    empty_prompt = prompts[""]
    sample_embeddings = {p: prompts[p] for p in sample_prompts}
    release_encoders(pipe)

    # 4. The frozen base in the planned memory mode, then a LoRA on it. Seeded, so the same seed
    # gives the same adapter.
    held = memory.mode_of(pipe.transformer)
    if not memory.can_apply(pipe.transformer, plan.mode):
        if override in (None, "", "auto") and memory.MODES[held].leanness > memory.MODES[plan.mode].leanness:
            plan = memory.keep_held(plan, held)
            emit(PhaseEvent("planning", plan.reason))
        else:
            log.info("the base transformer is %s; loading a fresh one for %s", held, plan.mode)
            fresh = load_transformer(base, dtype)  # on the CPU, before the old one goes: a failed load leaves it
            pipe.transformer = fresh
            memory.free_memory()
    transformer = pipe.transformer
    dtype = memory.apply_memory_mode(transformer, plan.mode, device, dtype)
    lora_config = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        init_lora_weights="gaussian",
        target_modules=list(config.target_modules),
    )
    torch.manual_seed(config.seed)
    with memory.quiet_torchao_lora():
        transformer.add_adapter(lora_config, adapter_name=ADAPTER)
    lora_parameters = [p for p in transformer.parameters() if p.requires_grad]
    for parameter in lora_parameters:
        parameter.data = parameter.data.float()
    checkpointing = plan.gradient_checkpointing if config.gradient_checkpointing is None else config.gradient_checkpointing
    if checkpointing:
        transformer.enable_gradient_checkpointing()
    transformer.train()

    eight_bit = plan.eight_bit_adam if config.eight_bit_adam is None else config.eight_bit_adam
    saved_optimizer = resumed.optimizer if resumed else start.optimizer if start else None
    if saved_optimizer is not None:
        # Continue with the optimizer the checkpoint was made with, where this machine has it.
        saved_eight_bit = _eight_bit_state(saved_optimizer)
        if saved_eight_bit != eight_bit and (not saved_eight_bit or _eight_bit_possible(device)):
            eight_bit = saved_eight_bit
    optimizer = _optimizer(lora_parameters, config.lr, device, eight_bit)
    lr_scheduler = get_scheduler(
        "constant_with_warmup" if config.lr_schedule == "constant" else "cosine",
        optimizer=optimizer,
        num_warmup_steps=config.warmup_steps,
        num_training_steps=config.steps,
    )
    noise_rng = torch.Generator("cpu").manual_seed(config.seed)
    first_step = start_step + 1
    # Resuming continues this run exactly; a start continues an earlier one's adapter under this run's
    # schedule. With the constant schedule, "train N more" from a checkpoint is the longer run exactly.
    state = resumed or start
    if state is not None:
        if set_peft_model_state_dict(transformer, state.lora, adapter_name=ADAPTER).unexpected_keys:
            raise CheckpointError("the adapter to continue from does not fit this model's layers")
        if state.optimizer is not None:
            if _eight_bit_state(state.optimizer) == _is_eight_bit(optimizer):
                optimizer.load_state_dict(state.optimizer)
            else:  # an 8-bit checkpoint where bitsandbytes or CUDA is missing: the moments restart
                log.warning("the checkpoint's optimizer state does not fit this machine's optimizer; starting it afresh")
        if state.rng is not None:
            noise_rng.set_state(state.rng["noise"])
            torch.set_rng_state(state.rng["torch"])
    if resumed is not None:
        lr_scheduler.load_state_dict(resumed.lr_scheduler)
        first_step = resumed.step + 1
        emit(PhaseEvent("resuming", f"from step {resumed.step}", step=resumed.step))
    elif start is not None:
        emit(PhaseEvent("continuing", f"from an adapter of {start.step} steps", step=start.step))

    # 5. The loop. Cancelling takes effect between two steps.
    emit(PhaseEvent("training", f"steps {first_step} to {last_step}"))
    order = BatchOrder(examples, config.batch_size, config.seed)
    scheduler_config = pipe.scheduler.config
    loop_started = time.monotonic()
    result = TrainResult(Path(), last_step, math.nan, training_set.sha256, 0.0, memory=plan, start_step=start_step)

    def facts(step: int) -> dict:
        """What an adapter file says about itself, in its header."""
        written = {
            "token": config.token,
            "base_model": base.name,
            "rank": config.rank,
            "alpha": config.alpha,
            "steps": step,
            "resolution": resolution,
            "dataset_sha256": training_set.sha256,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if start_step:
            written["started_from_step"] = start_step
        if base.is_tiny:
            written["warning"] = NOISE_WARNING
        return written

    def save_state(step: int) -> Path:
        lora = get_peft_model_state_dict(transformer, adapter_name=ADAPTER)
        # The adapter as it is at this step, beside the full state: one to choose, one to train on from.
        adapter = adapter_path(config.out, step)
        save_lora(adapter.parent, lora, lora_config_dict(transformer.peft_config[ADAPTER]), facts(step), adapter.name)
        path = save_checkpoint(
            checkpoint_path(config.out, step),
            Checkpoint(
                step=step,
                lora=lora,
                optimizer=optimizer.state_dict(),
                lr_scheduler=lr_scheduler.state_dict(),
                rng={"noise": noise_rng.get_state(), "torch": torch.get_rng_state()},
                record=record,
            ),
        )
        result.checkpoints.append(path)
        emit(CheckpointEvent(step, last_step, path, adapter))
        return path

    def take_samples(step: int) -> None:
        paths = render_samples(
            pipe,
            sample_embeddings,
            seed=config.sample_seed,
            size=resolution,
            steps=base.inference_steps,
            guidance=base.guidance,
            device=device,
            out_dir=config.out,
            step=step,
            note=NOISE_WARNING if base.is_tiny else "",
        )
        result.samples.extend(paths)
        emit(SampleEvent(step, last_step, tuple(sample_embeddings), tuple(paths)))

    if sample_embeddings and resumed is None:
        take_samples(start_step)  # where it starts (the base model, before it met the member): the first column

    for step in range(first_step, last_step + 1):
        if cancel is not None and cancel.cancelled:
            raise TrainingCancelled(step - 1)
        if cancel is not None and cancel.paused:
            done_step = step - 1
            saved = checkpoint_path(config.out, done_step)
            if done_step == start_step:
                raise TrainingPaused(done_step, None)
            raise TrainingPaused(done_step, saved if saved in result.checkpoints else save_state(done_step))
        step_started = time.monotonic()
        batch = order.batch(step)

        latents = torch.cat([example.latents for example in batch]).to(device, dtype)
        dropped = torch.rand(len(batch), generator=noise_rng) < config.caption_dropout
        captions = [empty_prompt if drop else example.prompt for example, drop in zip(batch, dropped)]
        prompt_embeds = torch.cat([c.sequence for c in captions]).to(device)
        pooled_embeds = torch.cat([c.pooled for c in captions]).to(device)
        noise = torch.randn(latents.shape, generator=noise_rng).to(device, dtype)
        image_tokens = latents.shape[-2] * latents.shape[-1] // 4
        sigmas = sample_sigmas(len(batch), image_tokens, scheduler_config, noise_rng)

        model_started = _clock(device, config.time_steps)
        loss = flow_matching_loss(
            transformer, latents, prompt_embeds, pooled_embeds, noise, sigmas, config.guidance, dtype
        )
        loss.backward()
        model_seconds = _clock(device, config.time_steps) - model_started if config.time_steps else None

        torch.nn.utils.clip_grad_norm_(lora_parameters, config.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        result.final_loss = loss.item()
        done = step - first_step + 1
        elapsed = time.monotonic() - loop_started
        emit(
            StepEvent(
                step=step,
                total=last_step,
                loss=result.final_loss,
                lr=lr_scheduler.get_last_lr()[0],
                elapsed_s=elapsed,
                eta_s=elapsed / done * (last_step - step),
                model_s=model_seconds,
            )
        )
        log.debug("step %d took %.4f s", step, time.monotonic() - step_started)

        # The last step is always kept: it is what "train more" continues from.
        if (step - start_step) % config.checkpoint_every == 0 or step == last_step:
            save_state(step)

        if sample_embeddings and ((step - start_step) % config.sample_every == 0 or step == last_step):
            take_samples(step)

    # 6. The adapter, in diffusers' format, with what it is in its header.
    emit(PhaseEvent("saving", str(config.out)))
    result.lora_path = save_lora(
        config.out,
        get_peft_model_state_dict(transformer, adapter_name=ADAPTER),
        lora_config_dict(transformer.peft_config[ADAPTER]),
        facts(last_step),
    )
    picture = timeline(config.out / "samples", last_step)
    if picture is not None:
        result.timeline = save_png(picture, config.out / "timeline.png", {"note": NOISE_WARNING if base.is_tiny else ""})
    result.seconds = time.monotonic() - started
    return result


class BatchOrder:
    """Which examples make up each step's batch, from the seed and the step alone.

    Each epoch is a seeded shuffle, cut into batches of one bucket (one image
    size) each. Needing no state is what lets a resumed run see the same batches.
    """

    def __init__(self, examples: list[CachedExample], batch_size: int, seed: int):
        self.examples, self.batch_size, self.seed = examples, batch_size, seed
        self._epoch, self._batches = 0, self._shuffle(0)
        self.per_epoch = len(self._batches)  # bucket sizes, hence batch counts, never change

    def _shuffle(self, epoch: int) -> list[list[CachedExample]]:
        rng = torch.Generator("cpu").manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.examples), generator=rng).tolist()
        by_bucket: dict[tuple, list[int]] = {}
        for index in order:
            by_bucket.setdefault(self.examples[index].bucket, []).append(index)
        batches = [
            indices[i : i + self.batch_size]
            for indices in by_bucket.values()
            for i in range(0, len(indices), self.batch_size)
        ]
        batches.sort(key=lambda b: order.index(b[0]))
        return [[self.examples[i] for i in b] for b in batches]

    def batch(self, step: int) -> list[CachedExample]:
        epoch, position = divmod(step - 1, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._shuffle(epoch)
        return self._batches[position]


def _remove_adapter(transformer) -> None:
    """Leave a borrowed transformer as it came: no doppel adapter, no peft wrappers if none are left."""
    adapters = getattr(transformer, "peft_config", {})
    if ADAPTER in adapters:
        if len(adapters) == 1:
            transformer.unload_lora()
        else:
            transformer.delete_adapters(ADAPTER)
    transformer.disable_gradient_checkpointing()
    transformer.eval()


def _optimizer(parameters, lr: float, device, eight_bit: bool):
    """8-bit AdamW when asked for and bitsandbytes and CUDA are there (a quarter of the state's memory), else AdamW."""
    if eight_bit and _eight_bit_possible(device):
        import bitsandbytes

        return bitsandbytes.optim.AdamW8bit(parameters, lr=lr, weight_decay=1e-4)
    if eight_bit:
        log.info("8-bit AdamW needs bitsandbytes on CUDA: using torch's AdamW")
    # fused: one kernel for all LoRA tensors instead of a Python loop over them.
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=1e-4, fused=True)


def _eight_bit_possible(device) -> bool:
    import importlib.util

    return device.type == "cuda" and importlib.util.find_spec("bitsandbytes") is not None


def _is_eight_bit(optimizer) -> bool:
    return type(optimizer).__module__.startswith("bitsandbytes")


def _eight_bit_state(optimizer_state: dict) -> bool:
    """Whether a saved optimizer state is bitsandbytes' 8-bit one (its moments are `state1`, `state2`)."""
    return any("state1" in state for state in optimizer_state.get("state", {}).values())


def _on_accelerator(module) -> bool:
    parameter = next(module.parameters(), None)
    return parameter is not None and parameter.device.type != "cpu"


def _clock(device, synchronise: bool) -> float:
    if synchronise and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
