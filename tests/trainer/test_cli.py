"""The command line: its output and exit status, as a person sees them.

`main` is called in this process (a separate one would import torch again: seconds per call); one test
runs `python -m trainer` as a person types it, to check the entry point itself.
"""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TOKEN
from trainer.cli import main


def cli(capsys, *args):
    """Run the command line in-process: (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_make_tiny_train_and_generate(tmp_path, photos, monkeypatch, capsys):
    from trainer.models.base_model import resolve_base

    monkeypatch.setenv("MODEL_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = cli(capsys, "make-tiny")  # where --base tiny looks
    assert code == 0, err
    assert "noise" in out and "--base tiny uses it" in out
    assert resolve_base("tiny").location == str(tmp_path / "cache" / "tiny-flux")

    code, out, err = cli(
        capsys, "train", "--base", "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "out",
        "--steps", "4", "--checkpoint-every", "2", "--keep-all",  # the drawn faces are no faces to dlib
    )
    assert code == 0, err
    assert "adapter:" in out and "4/4" in err  # the progress bar reached the end
    # Samples every quarter of the run by default: a short run's timeline still has five columns.
    sampled = {int(line.split()[3].rstrip(":")) for line in err.splitlines() if line.startswith("samples at step ")}
    assert sorted(sampled) == [0, 1, 2, 3, 4] and "timeline:" in out

    code, out, err = cli(
        capsys, "train", "--base", "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "more",
        "--steps", "2", "--sample-every", "0", "--keep-all",
        "--start-from", tmp_path / "out" / "checkpoints" / "step-000002.ckpt",
    )
    assert code == 0, err
    assert "(4 steps" in out and "continuing: from an adapter of 2 steps" in err

    code, out, err = cli(
        capsys, "generate", "--base", "tiny", "--lora", tmp_path / "out" / "pytorch_lora_weights.safetensors",
        "--prompt", f"photo of {TOKEN}", "--count", "2", "--seed", "9", "--size", "portrait",
        "--out", tmp_path / "pictures",
    )
    assert code == 0, err
    pictures = sorted((tmp_path / "pictures").iterdir())
    assert [p.name for p in pictures] == ["seed-10.png", "seed-9.png"]
    with Image.open(pictures[1]) as picture:
        assert picture.size == (48, 80)
        assert picture.text["doppel:seed"] == "9" and "noise" in picture.text["doppel:note"]

    # Elsewhere, it says how to use it; and an earlier tiny build may be replaced (its marker says doppel made it).
    for _ in range(2):
        code, out, err = cli(capsys, "make-tiny", tmp_path / "tiny")
        assert code == 0, err
        assert f"use it with --base {tmp_path / 'tiny'} (--base tiny uses the one in {tmp_path / 'cache'}" in out


def test_train_help_shows_the_defaults_and_limits():
    shown = subprocess.run(
        [sys.executable, "-m", "trainer", "train", "--help"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "1 to 10000 (default: 1000; --style: 2000)" in text and "a multiple of 16 from 64 to 1024" in text
    assert "steps between checkpoints (default: a quarter of --steps)" in text
    assert "{auto,fp32,bf16,fp8,nf4}" in text
    assert "--rank RANK (default: 16; --style: 16)" in text and "--lr LR (default: 0.0001; --style: 0.0001)" in text
    assert "--style train a style from design pictures" in text


def test_generate_and_compare_help_show_the_defaults(capsys):
    for command, expected in (("generate", "1 to 4 (default: 1)"), ("compare", "the seed of both halves (default: 0)")):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
        assert expected in " ".join(capsys.readouterr().out.split())


def test_bad_input_gives_one_line_and_a_non_zero_exit(tmp_path, photos, model_cache, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "empty.jpg").write_bytes(b"")
    a_file = photos / "me-0.jpg"
    cases = [
        (("train", "--base", "tiny", "--images", tmp_path / "bad", "--token", TOKEN, "--out", tmp_path / "o"),
         "empty.jpg"),
        (("train", "--base", "tiny", "--images", photos, "--token", "no way", "--out", tmp_path / "o"),
         "letters and digits"),
        # The bot's tokenizer rule: a word the model knows already (one token to tiny's tokenizers too).
        (("train", "--base", "tiny", "--images", photos, "--token", "photo", "--out", tmp_path / "o"),
         "the token 'photo' is a word the base model already knows"),
        (("train", "--base", "tiny", "--images", a_file, "--token", TOKEN, "--out", tmp_path / "o"),
         f"the image folder '{a_file}' is a file, not a folder of photos"),
        (("generate", "--base", "tiny", "--lora", tmp_path / "absent.safetensors", "--prompt", "x", "--out", tmp_path),
         "there is no adapter file"),
        (("train", "--base", "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "o",
          "--keep-all", "--start-from", tmp_path / "absent.ckpt"), "no checkpoint at"),
        (("train", "--base", "tiny", "--images", photos, "--token", TOKEN, "--out", tmp_path / "o"),
         "the face checks leave out every photo"),
        # A Hub model that is not cached (the tests are offline): what to do about it.
        (("train", "--base", "nobody/no-such-flux", "--images", photos, "--token", TOKEN, "--out", tmp_path / "o",
          "--keep-all"),
         "HF_TOKEN set (in .env). To try doppel offline, use --base tiny"),
    ]
    for args, reason in cases:
        code, out, err = cli(capsys, *args)
        assert code == 2, (args, out, err)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "Traceback" not in err, err
        assert reason in errors[0], errors[0]
    assert not (tmp_path / "o").exists()


def test_train_leaves_out_photos_without_a_face_with_a_line_each(tmp_path, model_cache, capsys):
    from tests.photos import astronaut, no_face, variants

    folder = tmp_path / "mixed"
    folder.mkdir()
    for index, picture in enumerate([astronaut(), *list(variants(astronaut()).values())[:2], no_face()]):
        picture.save(folder / f"{index:03d}.jpg")
    code, out, err = cli(capsys, "train", "--base", "tiny", "--images", folder, "--token", TOKEN,
                         "--out", tmp_path / "out", "--steps", "1", "--sample-every", "0")
    assert code == 0, err
    left = [line for line in err.splitlines() if "left out" in line]
    assert left == ["reading: left out 003.jpg: I see no face in it"]


def test_make_tiny_never_replaces_what_it_did_not_make(tmp_path, capsys):
    photos = tmp_path / "my-photos"
    photos.mkdir()
    (photos / "me.jpg").write_bytes(b"a photo")
    (tmp_path / "notes.txt").write_text("mine")
    for target, reason in ((photos, "already holds files that doppel did not write there"),
                           (tmp_path / "notes.txt", "is a file, not a folder")):
        code, out, err = cli(capsys, "make-tiny", target)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and "Traceback" not in err
        assert errors[0].startswith(f"error: '{target}' {reason}"), errors
    assert (photos / "me.jpg").read_bytes() == b"a photo" and (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-photos", "notes.txt"]  # no staging left behind


def test_compare_writes_one_labelled_picture_whose_halves_differ(tmp_path, trained, model_cache, capsys):
    from trainer.generation.compare import GAP, MIN_CELL, halves

    # The adapter in a folder named "me": the label comes from the adapter's token, not the folder.
    (tmp_path / "me").mkdir()
    adapter = tmp_path / "me" / "pytorch_lora_weights.safetensors"
    adapter.write_bytes(trained.lora_path.read_bytes())
    code, out, err = cli(capsys, "compare", "--base", "tiny", "--lora", adapter, "--prompt", f"photo of {TOKEN}",
                         "--seed", "3", "--out", tmp_path / "compare.png")
    assert code == 0, err
    with Image.open(tmp_path / "compare.png") as picture:
        assert picture.text["doppel:labels"] == f"base model | with {TOKEN}"
        assert picture.width == 2 * MIN_CELL + GAP  # the tiny model's 64 px, enlarged four times
        left, right = (np.asarray(half, dtype=np.int16) for half in halves(picture.convert("RGB"), (64, 64)))
    assert np.abs(left - right).mean() > 1


def test_train_refuses_before_loading_anything_and_says_how_to_resume(tmp_path, photos, capsys):
    """A missing folder and an --out with an earlier run are refused first (no plan, no model loaded)."""
    import argparse

    from trainer.cli import _resume_hint, _train

    code, out, err = cli(capsys, "train", "--base", "tiny", "--images", tmp_path / "nope", "--token", TOKEN,
                         "--out", tmp_path / "o")
    assert code == 2 and err.splitlines() == [f"error: the image folder '{tmp_path / 'nope'}' does not exist"], err
    earlier = tmp_path / "o" / "checkpoints" / "step-000004.ckpt"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"a checkpoint of an earlier run")
    code, out, err = cli(capsys, "train", "--base", "tiny", "--images", photos, "--token", TOKEN,
                         "--out", tmp_path / "o")
    assert code == 2 and f"holds an earlier run's checkpoints: --resume {earlier} goes on" in err, err
    assert sorted(p.name for p in earlier.parent.iterdir()) == [earlier.name]  # nothing of it touched
    # What Ctrl-C says after it (main prints "interrupted" and this)
    hint = _resume_hint(argparse.Namespace(run=_train, out=tmp_path / "o"))
    assert hint == f"; --resume {earlier} goes on from there"
    assert _resume_hint(argparse.Namespace(run=_train, out=tmp_path / "new")) == " before the first checkpoint"


def test_a_bad_option_is_refused_without_loading_torch(tmp_path):
    """Seconds, not the time torch takes to load (7.7 s on a laptop)."""
    script = (
        "import sys; from trainer.cli import main; "
        f"code = main(['train', '--base', 'tiny', '--images', {str(tmp_path)!r}, '--token', 'no way', "
        f"'--out', {str(tmp_path / 'o')!r}]); print(code, 'torch' in sys.modules)"
    )
    shown = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert shown.stdout.split() == ["2", "False"], shown.stderr
    assert "error: the token must be letters and digits" in shown.stderr
