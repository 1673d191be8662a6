import threading

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from safetensors.torch import load_file

from contract import ADAPTER_FILENAME, PhaseName, RunLayout, Step, TrainRequest
from tests.conftest import TOKEN
from trainer.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    TrainingCancelled,
    TrainingPaused,
)
from trainer.models.base_model import resolve_base
from trainer.training.caching import cache_training_set
from trainer.training.config import TrainConfig
from trainer.training.dataset import load_training_set
from trainer.training.flow import flow_matching_loss
from trainer.training.lora_file import load_lora_state, read_facts
from trainer.training.progress import CancelToken, CheckpointEvent
from trainer.training.train import train_lora


def _config(photos, out, **overrides):
    settings = dict(
        base="tiny", images=photos, token=TOKEN, out=out, steps=6, lr=1e-2, checkpoint_every=3, sample_every=0
    )
    return TrainConfig.from_options(**(settings | overrides))


def _lora(path):
    return load_file(path / ADAPTER_FILENAME if path.is_dir() else path)


def _fresh_pipeline(tiny_dir):
    return FluxPipeline.from_pretrained(tiny_dir, dtype=torch.float32, local_files_only=True)


def _held_out_loss(pipe, photos) -> float:
    """Loss on fixed noise and fixed noise levels: the per-step loss is too noisy to judge by."""
    base = resolve_base("tiny")
    examples, _ = cache_training_set(
        base.family, pipe, load_training_set(photos, TOKEN, 64), "cpu", base.max_sequence_length, []
    )
    generator = torch.Generator().manual_seed(1234)
    losses = []
    with torch.no_grad():
        for example in examples:
            for sigma in (0.25, 0.5, 0.75):
                noise = torch.randn(example.latents.shape, generator=generator)
                loss = flow_matching_loss(
                    base.family, pipe.transformer, example.latents, [example.prompt], noise, torch.tensor([sigma]), 1.0
                )
                losses.append(loss.item())
    return float(np.mean(losses))


def test_held_out_loss_falls_after_training(trained, tiny_dir, photos):
    pipe = _fresh_pipeline(tiny_dir)
    before = _held_out_loss(pipe, photos)
    pipe.load_lora_weights(trained.lora_path.parent, adapter_name="me")
    after = _held_out_loss(pipe, photos)
    assert after < before * 0.95, (before, after)


def test_base_weights_are_unchanged_bit_for_bit(tiny_dir, photos, tmp_path):
    pipe = _fresh_pipeline(tiny_dir)
    before = {k: v.clone() for k, v in pipe.transformer.state_dict().items()}
    train_lora(_config(photos, tmp_path), pipeline=pipe)
    after = pipe.transformer.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_adapter_loads_in_plain_diffusers_and_changes_the_picture(trained, tiny_dir):
    pipe = _fresh_pipeline(tiny_dir)

    def picture():
        return np.asarray(
            pipe(
                f"photo of {TOKEN}",
                height=64,
                width=64,
                num_inference_steps=4,
                max_sequence_length=64,
                generator=torch.Generator().manual_seed(7),
            ).images[0],
            dtype=np.int16,
        )

    base_picture = picture()
    pipe.load_lora_weights(trained.lora_path.parent, adapter_name="me")
    assert np.abs(picture() - base_picture).mean() > 1.0


def test_the_adapter_file_says_what_it_is(trained, photos):
    facts = read_facts(trained.lora_path)
    assert facts["token"] == TOKEN
    assert facts["base_model"] == "tiny"
    assert (facts["rank"], facts["alpha"], facts["steps"]) == ("16", "16", "30")
    assert facts["dataset_sha256"] == load_training_set(photos, TOKEN, 64).sha256
    assert facts["created"].startswith("20")
    assert "noise" in facts["warning"]
    keys = _lora(trained.lora_path).keys()
    assert keys and all(k.startswith("transformer.") and ".lora_" in k for k in keys)


def test_samples_and_checkpoints_are_written(trained):
    assert [p.name for p in trained.checkpoints] == ["step-000010.ckpt", "step-000020.ckpt", "step-000030.ckpt"]
    # Beside each checkpoint, its step's adapter, ready to be chosen.
    for checkpoint in trained.checkpoints:
        adapter = checkpoint.with_suffix(".safetensors")
        assert read_facts(adapter)["steps"] == str(int(checkpoint.stem.split("-")[1]))
        state = torch.load(checkpoint, weights_only=True)["lora"]
        assert all(torch.equal(state[k], v) for k, v in load_lora_state(adapter).items())
    assert [p.name for p in trained.samples] == [
        "step-000000-0.png",  # the base model, before training
        "step-000000-1.png",
        "step-000015-0.png",
        "step-000015-1.png",
        "step-000030-0.png",
        "step-000030-1.png",
    ]
    assert all(p.is_file() for p in trained.samples + trained.checkpoints)


def test_the_timeline_shows_the_prompts_through_the_run(trained):
    from PIL import Image

    from trainer.training.timeline import CELL, columns

    assert columns([0, 15, 30], 30) == [0, 15, 30]  # fewer samples than fractions: each once
    assert columns([0, 5, 10, 15, 20], 20) == [0, 5, 10, 15, 20]
    with Image.open(trained.timeline) as picture:
        # Steps 0, 15, 30 by two prompts, the 64 px samples enlarged to cells of CELL px; labels beside them.
        assert picture.width > 3 * CELL and 2 * CELL < picture.height < 3 * CELL


def test_the_same_seed_gives_the_same_adapter(photos, tmp_path):
    first = _lora(train_lora(_config(photos, tmp_path / "a")).lora_path)
    second = _lora(train_lora(_config(photos, tmp_path / "b")).lora_path)
    other = _lora(train_lora(_config(photos, tmp_path / "c", seed=1)).lora_path)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("base", ["tiny", "tiny-klein"])
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(photos, tmp_path, base):
    whole = _lora(train_lora(_config(photos, tmp_path / "whole", batch_size=2, base=base)).lora_path)

    cancel = CancelToken()

    def stop_after_first_checkpoint(event):
        if isinstance(event, CheckpointEvent):
            cancel.cancel()

    with pytest.raises(TrainingCancelled):
        train_lora(
            _config(photos, tmp_path / "parts", batch_size=2, base=base), on_event=stop_after_first_checkpoint,
            cancel=cancel,
        )
    checkpoint = RunLayout(tmp_path / "parts").checkpoint(3)
    steps = []
    resumed = train_lora(
        _config(photos, tmp_path / "parts", batch_size=2, base=base, resume=checkpoint),
        on_event=lambda e: steps.append(e.step) if isinstance(e, Step) else None,
    )
    assert steps == [4, 5, 6]
    parts = _lora(resumed.lora_path)
    assert parts.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=1e-5, atol=1e-6)


def test_pause_checkpoints_the_last_step_and_resuming_matches(photos, tmp_path):
    whole = _lora(train_lora(_config(photos, tmp_path / "whole", checkpoint_every=100)).lora_path)
    token = CancelToken()

    def pause_at_step_four(event):
        if isinstance(event, Step) and event.step == 4:
            token.pause()

    with pytest.raises(TrainingPaused) as caught:
        train_lora(_config(photos, tmp_path / "parts", checkpoint_every=100), on_event=pause_at_step_four, cancel=token)
    assert caught.value.step == 4 and caught.value.checkpoint == RunLayout(tmp_path / "parts").checkpoint(4)
    resumed = train_lora(_config(photos, tmp_path / "parts", checkpoint_every=100, resume=caught.value.checkpoint))
    parts = _lora(resumed.lora_path)
    for key in whole:
        torch.testing.assert_close(parts[key], whole[key], rtol=1e-5, atol=1e-6)


def test_cancel_stops_within_one_step(photos, tmp_path):
    cancel = CancelToken()
    steps = []

    def cancel_at_step_two(event):
        if isinstance(event, Step):
            steps.append(event.step)
            if event.step == 2:
                threading.Thread(target=cancel.cancel).start()

    with pytest.raises(TrainingCancelled) as caught:
        train_lora(_config(photos, tmp_path, steps=50), on_event=cancel_at_step_two, cancel=cancel)
    assert steps[-1] <= 3 and caught.value.step == steps[-1]
    assert not (tmp_path / ADAPTER_FILENAME).exists()


def test_bad_files_stop_the_run_before_any_training(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "zero.jpg").write_bytes(b"")
    (photos / "letter.png").write_text("dear diary")
    with pytest.raises(DatasetError, match="zero.jpg.*letter.png|letter.png.*zero.jpg"):
        train_lora(_config(photos, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_from_other_settings_is_refused(trained, photos, tmp_path):
    with pytest.raises(CheckpointError, match="other settings") as refused:
        train_lora(_config(photos, tmp_path, resume=trained.checkpoints[0]))
    assert "sha256" not in str(refused.value) and "--steps" in str(refused.value)  # the options' words
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(trained.checkpoints[0].read_bytes()[:100])
    with pytest.raises(CheckpointError, match="damaged"):
        train_lora(_config(photos, tmp_path, resume=damaged))


def test_training_more_from_a_checkpoint_is_the_longer_run(photos, tmp_path):
    whole = train_lora(_config(photos, tmp_path / "whole"))  # 6 steps, checkpoints at 3 and 6
    steps, phases = [], []
    more = train_lora(
        _config(
            photos, tmp_path / "more", steps=3, start_from=RunLayout(tmp_path / "whole").checkpoint(3), sample_every=3
        ),
        on_event=lambda e: steps.append(e.step) if isinstance(e, Step) else phases.append(e),
    )
    assert steps == [4, 5, 6] and more.steps == 6 and more.start_step == 3
    assert any(getattr(p, "name", None) == PhaseName.CONTINUING and p.step == 3 for p in phases)
    assert [p.name for p in more.samples] == [f"step-00000{s}-{k}.png" for s in (3, 6) for k in (0, 1)]
    facts = read_facts(more.lora_path)
    assert (facts["steps"], facts["started_from_step"]) == ("6", "3")
    # Adam's moments and the noise carry over: three more steps from step 3 are steps 4 to 6 of the whole run.
    continued, straight = _lora(more.lora_path), _lora(whole.lora_path)
    for key in straight:
        torch.testing.assert_close(continued[key], straight[key], rtol=1e-5, atol=1e-6)


def test_building_on_an_adapter_file_starts_from_its_weights(photos, tmp_path):
    earlier = train_lora(_config(photos, tmp_path / "earlier", steps=3))
    again = train_lora(_config(photos, tmp_path / "again", steps=1, lr=1e-9, start_from=earlier.lora_path))
    assert again.steps == 4
    before, after = _lora(earlier.lora_path), _lora(again.lora_path)
    for key in before:  # a negligible step away from where it started, not from a fresh LoRA's zeros
        torch.testing.assert_close(after[key], before[key], rtol=1e-4, atol=1e-6)


def test_an_adapter_of_another_shape_cannot_be_built_on(trained, photos, tmp_path):
    with pytest.raises(CheckpointError, match="rank 16 and alpha 16, this run has rank 8"):
        train_lora(_config(photos, tmp_path, rank=8, start_from=trained.checkpoints[0]))
    with pytest.raises(CheckpointError, match="rank 16 and alpha 16, this run has rank 8"):
        train_lora(_config(photos, tmp_path, rank=8, start_from=trained.lora_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": 0}, "steps must be between"),
        ({"resolution": 500}, "multiple of 16"),
        ({"token": "TH GH"}, "letters and digits"),
        ({"lr_schedule": "linear"}, "schedule must be one of"),
        ({"steps": 10_001}, "steps must be between 1 and 10000"),  # the contract's limits, the bot's too
        ({"resolution": 2048}, "multiple of 16 from 64 to 1024"),
        ({"batch_size": 17}, "batch size must be between 1 and 16"),
        ({"memory_mode": "fp16"}, "memory mode must be one of auto, fp32, bf16, fp8, nf4"),
        ({"warmup_steps": -1}, "warm-up steps must be at least 0"),
        ({"checkpoint_every": 0}, "intervals must be positive"),
    ],
)
def test_wrong_options_are_refused_with_a_reason(photos, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _config(photos, tmp_path, **overrides)


def test_every_problem_is_said_at_once(photos, tmp_path):
    expected = "^steps must be .*; rank must be .*; the learning-rate schedule .*; batch size"
    with pytest.raises(ConfigError, match=expected):
        _config(photos, tmp_path, steps=0, rank=0, lr_schedule="linear", batch_size=0)


def test_a_config_holds_the_request_and_the_workers_settings_decide_none_of_it(photos, tmp_path, monkeypatch):
    request = TrainRequest(
        base="tiny", token=TOKEN, steps=8, rank=4, lr=1e-3, seed=3, memory_mode="fp8", sample_every=0
    )
    config = TrainConfig(request, images=photos, out=tmp_path, start_from=tmp_path / "earlier.ckpt")
    assert config.request is request and config.alpha == 4  # alpha follows the request's rank
    assert config.start_from == tmp_path / "earlier.ckpt" and config.resume is None
    assert (request.checkpoint_interval, request.sample_interval) == (2, 0)  # a quarter of the run; no samples
    # Flat options split into the request and the trainer's knobs; MEMORY_MODE is the asker's, not the trainer's.
    monkeypatch.setenv("MEMORY_MODE", "nf4")
    flat = _config(photos, tmp_path, steps=8, batch_size=2)
    assert (flat.request.steps, flat.batch_size, flat.request.memory_mode) == (8, 2, "auto")


def test_cosine_schedule_with_warmup_and_checkpointing_run(photos, tmp_path):
    rates = []
    train_lora(
        _config(photos, tmp_path, lr_schedule="cosine", warmup_steps=2, gradient_checkpointing=True),
        on_event=lambda e: rates.append(e.lr) if isinstance(e, Step) else None,
    )
    assert rates[0] < rates[1] == pytest.approx(1e-2)  # warming up, then the peak
    assert rates[-1] < rates[2]  # then decaying


def test_by_default_a_run_checkpoints_and_samples_each_quarter_and_its_timeline_covers_every_attempt(photos, tmp_path):
    settings = {"steps": 8, "checkpoint_every": None, "sample_every": None, "sample_prompts": ("photo of [trigger]",)}
    token = CancelToken()

    def pause_at_step_five(event):
        if isinstance(event, Step) and event.step == 5:
            token.pause()

    with pytest.raises(TrainingPaused) as caught:
        train_lora(_config(photos, tmp_path / "first", **settings), on_event=pause_at_step_five, cancel=token)
    first = RunLayout(tmp_path / "first")
    assert sorted(first.sample_files()) == [0, 2, 4]
    assert caught.value.checkpoint == first.checkpoint(5)
    assert sorted(p.name for p in first.checkpoints.glob("*.ckpt")) == [f"step-00000{s}.ckpt" for s in (2, 4, 5)]

    # As the worker resumes elsewhere: the earlier attempt's samples are put in the new run's folder first.
    second = RunLayout(tmp_path / "second")
    second.samples.mkdir(parents=True)
    for path in first.all_samples():
        (second.samples / path.name).write_bytes(path.read_bytes())
    result = train_lora(_config(photos, second.root, **settings, resume=caught.value.checkpoint))
    assert [p.name for p in result.samples] == ["step-000006-0.png", "step-000008-0.png"]  # not step 0 again
    assert [p.name for p in result.checkpoints] == ["step-000006.ckpt", "step-000008.ckpt"]
    assert result.lora_path == second.adapter and result.timeline == second.timeline
    assert result.timeline_steps == (0, 2, 4, 6, 8)
