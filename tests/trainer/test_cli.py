"""The command line, run as a person runs it: a separate process, its output and exit status."""

import os
import subprocess
import sys

from PIL import Image

from tests.conftest import TOKEN


def run(*args, env_extra=None):
    env = os.environ | (env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "trainer", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def test_make_tiny_train_and_generate(tmp_path, photos, model_cache):
    made = run("make-tiny", tmp_path / "tiny")
    assert made.returncode == 0, made.stderr
    assert "noise" in made.stdout and (tmp_path / "tiny" / "model_index.json").is_file()

    trained = run(
        "train", "--base", tmp_path / "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "out",
        "--steps", "4", "--checkpoint-every", "2", "--sample-every", "0",
    )
    assert trained.returncode == 0, trained.stderr
    assert "adapter:" in trained.stdout and "4/4" in trained.stderr  # the progress bar reached the end

    more = run(
        "train", "--base", tmp_path / "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "more",
        "--steps", "2", "--sample-every", "0", "--start-from", tmp_path / "out" / "checkpoints" / "step-000002.ckpt",
    )
    assert more.returncode == 0, more.stderr
    assert "(4 steps" in more.stdout and "continuing: from an adapter of 2 steps" in more.stderr

    generated = run(
        "generate", "--base", tmp_path / "tiny", "--lora", tmp_path / "out" / "pytorch_lora_weights.safetensors",
        "--prompt", f"photo of {TOKEN}", "--count", "2", "--seed", "9", "--size", "portrait",
        "--out", tmp_path / "pictures",
    )
    assert generated.returncode == 0, generated.stderr
    pictures = sorted((tmp_path / "pictures").iterdir())
    assert [p.name for p in pictures] == ["seed-10.png", "seed-9.png"]
    with Image.open(pictures[1]) as picture:
        assert picture.size == (48, 80)
        assert picture.text["doppel:seed"] == "9" and "noise" in picture.text["doppel:note"]


def test_train_help_shows_the_defaults_and_limits():
    shown = run("train", "--help")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "1 to 10000 (default: 1000)" in text and "a multiple of 16 from 64 to 1024" in text
    assert "steps between checkpoints (default: a quarter of --steps)" in text
    assert "{auto,fp32,bf16,fp8,nf4}" in text


def test_bad_input_gives_one_line_and_a_non_zero_exit(tmp_path, photos, model_cache):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.jpg").write_bytes(b"")
    cases = [
        ("train", "--base", "tiny", "--images", tmp_path / "bad", "--token", TOKEN, "--out", tmp_path / "o"),
        ("train", "--base", "tiny", "--images", photos, "--token", "no way", "--out", tmp_path / "o"),
        ("generate", "--base", "tiny", "--lora", tmp_path / "absent.safetensors", "--prompt", "x", "--out", tmp_path),
        ("train", "--base", "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "o",
         "--start-from", tmp_path / "absent.ckpt"),
    ]
    results = [run(*args) for args in cases]
    for result in results:
        assert result.returncode == 2, result
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "empty.jpg" in results[0].stderr and "no checkpoint at" in results[-1].stderr


def test_compare_writes_one_picture_whose_halves_differ(tmp_path, trained, model_cache):
    import numpy as np

    result = run("compare", "--base", "tiny", "--lora", trained.lora_path, "--prompt", f"photo of {TOKEN}",
                 "--seed", "3", "--out", tmp_path / "compare.png")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "compare.png") as picture:
        pixels = np.asarray(picture.convert("RGB"), dtype=np.int16)
    left, right = pixels[20:, :64], pixels[20:, 64:]  # below the labels
    assert pixels.shape[1] == 128 and np.abs(left - right).mean() > 1
