"""Train a person's or a style's LoRA for a Flux-family base: one loop, readable top to bottom.

The shape follows diffusers' examples/dreambooth/train_dreambooth_lora_flux.py (and _flux2_klein.py):
cache latents and text embeddings, add a peft LoRA to the frozen transformer,
and regress the velocity at logit-normal noise levels. What differs between FLUX.1 and
FLUX.2 [klein] (prompts, latents, the transformer's call, the LoRA's modules) is asked of
the base's family (`trainer.models.families`). A style (`contract.subjects`) trains the same way, without
faces: its pictures are not looked at for them, its samples are not scored for likeness, and a few of its
pictures are held out to measure it instead (`trainer.training.heldout`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch
from diffusers.optimization import get_scheduler
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from PIL import Image

from contract import Phase, PhaseName, RunLayout, Step
from contract.subjects import FACT_KEY, STYLE
from trainer.captioning import caption_missing_photos
from trainer.errors import CheckpointError, TrainingCancelled, TrainingPaused
from trainer.images import save_png
from trainer.models import memory
from trainer.models.base_model import BaseModel, load_pipeline, load_transformer, pick_device, pick_dtype, resolve_base
from trainer.models.tiny_build import NOISE_WARNING
from trainer.training.caching import CachedExample, PromptEmbedding, cache_training_set, release_encoders
from trainer.training.checkpoint import Checkpoint, load_checkpoint, load_start, save_checkpoint
from trainer.training.config import TrainConfig
from trainer.training.dataset import load_training_set
from trainer.training.flow import flow_matching_loss
from trainer.training.heldout import HeldOutLoss, held_out
from trainer.training.likeness import Score
from trainer.training.lora_file import lora_config_dict, measure_facts, save_lora
from trainer.training.progress import CancelToken, CheckpointEvent, Event, SampleEvent
from trainer.training.sampling import draw_samples, write_samples
from trainer.training.scoring import SampleScorer
from trainer.training.timeline import choose_columns, timeline

log = logging.getLogger(__name__)

ADAPTER = "doppel"


@dataclass
class TrainResult:
    lora_path: Path
    steps: int
    final_loss: float
    dataset_sha256: str
    seconds: float
    samples: list[Path] = field(default_factory=list)  # this attempt's
    checkpoints: list[Path] = field(default_factory=list)
    memory: memory.MemoryPlan | None = None  # how the base was made to fit
    timeline: Path | None = None  # samples through the run, side by side: every attempt's
    timeline_steps: tuple[int, ...] = ()  # the steps the timeline's columns show, first to last
    likeness: tuple[float | None, ...] = ()  # per column: its likeness (trainer/training/likeness.py)
    recommended: int | None = None  # the column most like the member that still follows the prompts (a style's:
    # the lowest held-out loss, trainer/training/heldout.py)
    start_step: int = 0  # the steps the adapter it built on already had (`start_from`)


def train_lora(
    config: TrainConfig,
    on_event: Callable[[Event], None] | None = None,
    cancel: CancelToken | None = None,
    pipeline=None,
    base: BaseModel | None = None,
) -> TrainResult:
    """Train, and write the run's files where `RunLayout(config.out)` says: the adapter, the
    checkpoints with their step adapters, the samples, and a timeline of every sample there.

    `pipeline` (and its `base`) let a long-lived worker or a benchmark pass the
    pipeline it already holds; the adapter is removed from it again when
    training ends, however it ends. Its text encoders and VAE are left on the CPU, and its
    transformer in the memory mode this run used (quantization cannot be undone in place; a
    later run that needs another mode loads a fresh transformer into it).

    With `config.start_from`, the run builds on an earlier adapter: its LoRA (and a checkpoint's
    optimizer state and random state) is where training starts, and steps count on from its
    step, so "train 500 more" from step 750 runs steps 751 to 1250.

    The first event is the memory plan (`Phase(PhaseName.PLANNING, reason)`).
    """
    emit = on_event or (lambda event: None)
    started = time.monotonic()
    request = config.request  # what decides the work: the base, the steps, the memory mode ...
    base = base or resolve_base(request.base)
    family = base.family
    resolution = request.resolution or base.train_resolution
    device = pick_device(config.device)
    dtype = pick_dtype(device)  # what the pipeline is loaded in; the memory mode may change the transformer's
    plan = memory.plan_memory(
        memory.gpu_gib(device), resolution, request.memory_mode, batch_size=config.batch_size,
        model=family.model_size(base.name),
    )
    emit(Phase(PhaseName.PLANNING, plan.reason))

    # 1. Captions for the photos that have none (a member's own always win), then read and check every
    # photo before loading anything heavy: bad files fail fast.
    caption_missing_photos(config.images, request.token, request.caption_model, emit, request.subject)
    emit(Phase(PhaseName.READING, str(config.images)))
    training_set = load_training_set(config.images, request.token, resolution, leave_out=config.leave_out_doubtful,
                                     subject=request.subject)
    for name, why in training_set.left_out:
        emit(Phase(PhaseName.READING, f"left out {name}: {why}"))
    targets = list(config.target_modules or family.lora_targets)
    record = config.to_record() | {
        "resolution": resolution, "dataset_sha256": training_set.sha256, "target_modules": targets,
        "family": family.name,
    }
    if config.resume:
        # The run's own checkpoint holds everything, the step it started from included.
        resumed, start = load_checkpoint(config.resume, record), None
        record["start_step"] = resumed.record.get("start_step", 0)
    else:
        resumed = None
        start = load_start(config.start_from, record) if config.start_from else None
        record["start_step"] = start.step if start else 0
    start_step = record["start_step"]
    last_step = start_step + request.steps

    # 2. The base model. On a GPU in bf16; the LoRA's own weights stay in fp32.
    emit(Phase(PhaseName.LOADING, base.name))
    pipe = pipeline if pipeline is not None else load_pipeline(base, dtype)
    # Samples are scored against the member's face (when their photos show it) in processes beside the loop.
    layout = RunLayout(config.out)
    layout.root.mkdir(parents=True, exist_ok=True)
    # Its pictures wait in the run's folder: a worker's runs are in its own, swept when it dies (trainer.scratch).
    scorer = SampleScorer.start(training_set.identity, layout.root) if request.sample_interval else None
    try:
        # 3. Cache latents and text embeddings once, then free the encoders' memory. The transformer
        # goes to the GPU only after this, so the encoders and it are never there together (a lean
        # plan also parks a borrowed transformer on the CPU meanwhile).
        emit(Phase(PhaseName.CACHING, f"{len(training_set.images)} images at {resolution} px"))
        if plan.lean and memory.on_accelerator(pipe.transformer):
            pipe.transformer.to("cpu")
            memory.free_memory()
        sample_prompts = config.sample_prompts_for_token() if request.sample_interval else []
        examples, prompts = cache_training_set(
            family,
            pipe,
            training_set,
            device,
            base.max_sequence_length,
            extra_prompts=sample_prompts + [""],
            text_device=torch.device("cpu") if plan.encoders_on_cpu else None,
        )
        empty_prompt = prompts[""]
        release_encoders(family, pipe)
        measured = held_out(e.name for e in examples) if request.subject == STYLE else set()
        heldout = HeldOutLoss(family, [e for e in examples if e.name in measured], request.seed, config.guidance)
        examples = [e for e in examples if e.name not in measured]
        if measured:
            emit(Phase(PhaseName.READING, f"held out to measure the style: {', '.join(sorted(measured))}"))

        # 4. The frozen base in the planned memory mode, then a LoRA on it. Seeded, so the same seed
        # gives the same adapter.
        held = memory.mode_of(pipe.transformer)
        if not memory.can_apply(pipe.transformer, plan.mode):
            if request.memory_mode == "auto" and memory.MODES[held].leanness > memory.MODES[plan.mode].leanness:
                plan = memory.keep_held(plan, held)
                emit(Phase(PhaseName.PLANNING, plan.reason))
            else:
                log.info("the base transformer is %s; loading a fresh one for %s", held, plan.mode)
                fresh = load_transformer(base, dtype)  # on the CPU, before the old one goes: a failed load leaves it
                pipe.transformer = fresh
                memory.free_memory()
        transformer = pipe.transformer
        dtype = memory.apply_memory_mode(transformer, plan.mode, device, dtype)
        lora_config = LoraConfig(
            r=request.rank,
            lora_alpha=config.alpha if config.alpha is not None else request.rank,  # set in __post_init__
            init_lora_weights="gaussian",
            target_modules=targets,
        )
        torch.manual_seed(request.seed)
        with memory.quiet_torchao_lora():
            transformer.add_adapter(lora_config, adapter_name=ADAPTER)
        lora_parameters = [p for p in transformer.parameters() if p.requires_grad]
        for parameter in lora_parameters:
            parameter.data = parameter.data.float()
        checkpointing = config.gradient_checkpointing
        if checkpointing is None:
            checkpointing = plan.gradient_checkpointing
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
        optimizer = _optimizer(lora_parameters, request.lr, device, eight_bit)
        lr_scheduler = get_scheduler(
            "constant_with_warmup" if config.lr_schedule == "constant" else "cosine",
            optimizer=optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=request.steps,
        )
        noise_rng = torch.Generator("cpu").manual_seed(request.seed)
        result = TrainResult(Path(), last_step, math.nan, training_set.sha256, 0.0, memory=plan, start_step=start_step)
        run = _Run(
            config=config,
            base=base,
            layout=layout,
            resolution=resolution,
            device=device,
            dtype=dtype,
            record=record,
            emit=emit,
            last_step=last_step,
            pipe=pipe,
            transformer=transformer,
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            noise_rng=noise_rng,
            sample_embeddings={p: prompts[p] for p in sample_prompts},
            empty_embedding=empty_prompt,
            result=result,
            scorer=scorer,
            heldout=heldout if measured else None,
        )
        first_step = start_step + 1
        # Resuming continues this run exactly; a start continues an earlier one's adapter under this run's
        # schedule. With the constant schedule, "train N more" from a checkpoint is the longer run exactly.
        state = resumed or start
        if state is not None:
            run.restore(state.lora, state.optimizer, state.rng)
        if resumed is not None:
            lr_scheduler.load_state_dict(resumed.lr_scheduler)
            first_step = resumed.step + 1
            emit(Phase(PhaseName.RESUMING, f"from step {resumed.step}", step=resumed.step))
        elif start is not None:
            emit(Phase(PhaseName.CONTINUING, f"from an adapter of {start.step} steps", step=start.step))

        # 5. The loop. Cancelling takes effect between two steps.
        emit(Phase(PhaseName.TRAINING, f"steps {first_step} to {last_step}"))
        order = BatchOrder(examples, config.batch_size, request.seed)
        scheduler_config = pipe.scheduler.config
        loop_started = time.monotonic()

        if run.sample_embeddings and resumed is None:
            run.take_samples(start_step)  # where it starts (the base model, before it met the member): the first column

        for step in range(first_step, last_step + 1):
            if cancel is not None and cancel.cancelled:
                raise TrainingCancelled(step - 1)
            if cancel is not None and cancel.paused:
                done_step = step - 1
                run.collect_samples(wait=True)  # the samples so far reach the bot before the GPU is given up
                if done_step == start_step:
                    raise TrainingPaused(done_step, None)
                saved = layout.checkpoint(done_step)
                raise TrainingPaused(done_step, saved if saved in result.checkpoints else run.save_state(done_step))
            step_started = time.monotonic()
            run.collect_samples(wait=False)
            batch = order.batch(step)

            latents = torch.cat([example.latents for example in batch]).to(device, dtype)
            dropped = torch.rand(len(batch), generator=noise_rng) < config.caption_dropout
            captions = [empty_prompt if drop else example.prompt for example, drop in zip(batch, dropped, strict=True)]
            noise = torch.randn(latents.shape, generator=noise_rng).to(device, dtype)
            sigmas = family.sample_sigmas(len(batch), family.image_tokens(latents), scheduler_config, noise_rng)

            model_started = _clock(device, config.time_steps)
            loss = flow_matching_loss(family, transformer, latents, captions, noise, sigmas, config.guidance, dtype)
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
                Step(
                    step=step,
                    total=last_step,
                    loss=result.final_loss,
                    lr=float(lr_scheduler.get_last_lr()[0]),
                    elapsed_s=elapsed,
                    eta_s=elapsed / done * (last_step - step),
                    model_s=model_seconds,
                )
            )
            log.debug("step %d took %.4f s", step, time.monotonic() - step_started)

            # The last step is always kept: it is what "train more" continues from.
            if request.checkpoint_due(step - start_step) or step == last_step:
                run.save_state(step)

            if run.sample_embeddings and (request.sample_due(step - start_step) or step == last_step):
                run.take_samples(step)

        # 6. The adapter, in diffusers' format, with what it is in its header; and the timeline, from
        # every sample in the run's folder (an earlier attempt's too, put there before resuming).
        emit(Phase(PhaseName.SAVING, str(config.out)))
        run.collect_samples(wait=True)
        result.lora_path = run.write_adapter(layout.adapter, last_step)
        samples = layout.sample_files()
        shown = choose_columns(samples, last_step)
        if shown.steps:
            note = NOISE_WARNING if base.is_tiny else ""
            result.timeline = save_png(timeline(samples, shown), layout.timeline, {"note": note})
            result.timeline_steps = tuple(shown.steps)
            result.likeness, result.recommended = shown.likeness, shown.recommended
        result.seconds = time.monotonic() - started
        return result
    finally:
        if scorer is not None:
            scorer.close()
        if pipeline is not None:
            _remove_adapter(pipe.transformer)


@dataclass
class _Run:
    """What a run's helpers share once its LoRA and optimizer exist."""

    config: TrainConfig
    base: BaseModel
    layout: RunLayout
    resolution: int
    device: torch.device
    dtype: torch.dtype  # the frozen base's, which the loss is computed in
    record: dict  # the settings a checkpoint of this run must match
    emit: Callable[[Event], None]
    last_step: int
    pipe: object
    transformer: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler
    noise_rng: torch.Generator
    sample_embeddings: dict[str, PromptEmbedding]
    empty_embedding: PromptEmbedding  # cached with the captions: a caption dropped, and samples' guidance
    result: TrainResult
    scorer: SampleScorer | None = None  # samples' likeness; None: the photos gave no face to compare with
    heldout: HeldOutLoss | None = None  # a style's measure instead; None: a person's, or too few pictures to hold any
    # Samples drawn but not yet scored, in step order: (step, images, their scores to come).
    unscored: list[tuple[int, list[Image.Image], list[Future[Score]]]] = field(default_factory=list)

    def restore(self, lora: dict, optimizer_state: dict | None, rng: dict | None) -> None:
        """Put a checkpoint's (or an adapter's) LoRA, optimizer moments and random state in place."""
        loaded = set_peft_model_state_dict(self.transformer, lora, adapter_name=ADAPTER)
        if loaded.unexpected_keys:  # type: ignore[attr-defined]  # peft types it as a bare namedtuple
            raise CheckpointError("the adapter to continue from does not fit this model's layers")
        if optimizer_state is not None:
            if _eight_bit_state(optimizer_state) == _is_eight_bit(self.optimizer):
                self.optimizer.load_state_dict(optimizer_state)
            else:  # an 8-bit checkpoint where bitsandbytes or CUDA is missing: the moments restart
                log.warning(
                    "the checkpoint's optimizer state does not fit this machine's optimizer; starting it afresh"
                )
        if rng is not None:
            self.noise_rng.set_state(rng["noise"])
            torch.set_rng_state(rng["torch"])

    def facts(self, step: int) -> dict:
        """What an adapter file says about itself, in its header."""
        start_step = self.result.start_step
        written = {
            "token": self.config.request.token,
            "base_model": self.base.name,
            "family": self.base.family.name,
            "rank": self.config.request.rank,
            "alpha": self.config.alpha,
            "steps": step,
            "resolution": self.resolution,
            "dataset_sha256": self.result.dataset_sha256,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            FACT_KEY: self.config.request.subject,
        }
        if start_step:
            written["started_from_step"] = start_step
        if self.base.is_tiny:
            written["warning"] = NOISE_WARNING
        return written | measure_facts(choose_columns(self.layout.sample_files(), step))

    def write_adapter(self, path: Path, step: int, lora: dict | None = None) -> Path:
        """The LoRA as it is now, in diffusers' format with doppel's facts in its header."""
        if lora is None:
            lora = get_peft_model_state_dict(self.transformer, adapter_name=ADAPTER)
        config = lora_config_dict(self.transformer.peft_config[ADAPTER])  # type: ignore[index]  # peft's attribute
        return save_lora(path.parent, lora, config, self.facts(step), path.name)

    def save_state(self, step: int) -> Path:
        """A checkpoint to train on from, and beside it the adapter as it is at this step, to choose."""
        lora = get_peft_model_state_dict(self.transformer, adapter_name=ADAPTER)
        adapter = self.write_adapter(self.layout.step_adapter(step), step, lora)
        path = save_checkpoint(
            self.layout.checkpoint(step),
            Checkpoint(
                step=step,
                lora=lora,
                optimizer=self.optimizer.state_dict(),
                lr_scheduler=self.lr_scheduler.state_dict(),
                rng={"noise": self.noise_rng.get_state(), "torch": torch.get_rng_state()},
                record=self.record,
            ),
        )
        self.result.checkpoints.append(path)
        self.emit(CheckpointEvent(step, self.last_step, path, adapter))
        return path

    def take_samples(self, step: int) -> None:
        """Draw the samples; they are written and reported once scored (`collect_samples`), at once unscored."""
        images = draw_samples(
            self.pipe,
            self.sample_embeddings,
            seed=self.config.sample_seed,
            size=self.resolution,
            steps=self.base.inference_steps,
            guidance=self.base.guidance,
            device=self.device,
            empty=self.empty_embedding,
        )
        if self.heldout is not None:
            loss = self.heldout.measure(self.transformer, self.device, self.dtype)
            self._write_samples(step, images, None, loss)
        elif self.scorer is None:
            self._write_samples(step, images, None)
        else:
            self.unscored.append((step, images, [self.scorer.submit(image) for image in images]))

    def collect_samples(self, wait: bool) -> None:
        """Write and report the samples whose scores are in (with `wait`, all of them, waiting for their scores)."""
        while self.unscored and self.scorer is not None and (wait or all(f.done() for f in self.unscored[0][2])):
            step, images, futures = self.unscored.pop(0)
            self._write_samples(step, images, [self.scorer.result(f) for f in futures])

    def _write_samples(self, step: int, images: list[Image.Image], scores: list[tuple[bool, Score]] | None,
                       heldout_loss: float | None = None) -> None:
        paths = write_samples(
            images,
            list(self.sample_embeddings),
            seed=self.config.sample_seed,
            layout=self.layout,
            step=step,
            note=NOISE_WARNING if self.base.is_tiny else "",
            scores=scores,
            heldout_loss=heldout_loss,
        )
        self.result.samples.extend(paths)
        self.emit(SampleEvent(step, self.last_step, tuple(self.sample_embeddings), tuple(paths)))


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


def _clock(device, synchronise: bool) -> float:
    if synchronise and device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
