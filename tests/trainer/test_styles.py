"""A team's style on the tiny model: trained from faceless design pictures on the command line, then drawn
alone, with a person, in a comparison and in a group, always as a style and never as someone's face."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract import AdapterRef, GenerateRequest, RunLayout, adapter_identity
from contract.group import GroupPlan
from contract.subjects import PERSON, STYLE
from tests.trainer.designs import write_designs
from tests.trainer.test_group import PROMPT as GROUP_PROMPT
from tests.trainer.test_group import random_adapter, two_astronauts
from trainer.cli import main
from trainer.cli_adapters import AdapterArg, adapter_refs
from trainer.errors import CheckpointError, DoppelError
from trainer.generation import group
from trainer.generation.compare import compare_pictures, halves
from trainer.generation.generator import Generator
from trainer.training import heldout
from trainer.training.checkpoint import load_checkpoint
from trainer.training.lora_file import read_facts
from trainer.training.timeline import choose_columns

STYLE_TOKEN = "BRND42"


def run(*args) -> tuple[int, str, str]:
    """The command line in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def style_run(tmp_path_factory, tiny_dir):
    """`train --style` on five drawn design pictures without captions, captioned by the tiny Florence-2."""
    import os

    root = tmp_path_factory.mktemp("style")
    pictures = write_designs(root / "designs", 5)
    os.environ["CAPTION_MODEL"] = "tiny"
    try:
        done = run("train", "--style", "--base", "tiny", "--images", pictures, "--token", STYLE_TOKEN,
                   "--out", root / "out", "--steps", "6", "--lr", "1e-2", "--sample-every", "2", "--captions")
    finally:
        os.environ["CAPTION_MODEL"] = "off"
    return pictures, root / "out" / "pytorch_lora_weights.safetensors", done


@pytest.fixture(scope="module")
def generator(tiny_dir):
    return Generator("tiny", max_adapters=4)


@pytest.fixture(scope="module")
def people(generator, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("style-people")
    made = {}
    for seed, token in enumerate(("ANN", "BOB")):
        (folder / token).mkdir()
        made[token] = random_adapter(generator.pipe, folder / token, seed)
    return made


def refs(*given: tuple[Path, float]) -> tuple[tuple[AdapterRef, ...], dict[str, Path]]:
    """References as the command line makes them (each file's subject from its header), and their files."""
    found = adapter_refs([AdapterArg(path, weight) for path, weight in given], [], [f"a{k}" for k in range(len(given))])
    return tuple(ref for ref, _ in found), {ref.identity: path for ref, path in found}


def test_the_command_line_trains_a_style_on_faceless_pictures(style_run):
    pictures, adapter, (code, out, err) = style_run
    assert code == 0, err
    facts = read_facts(adapter)
    assert facts["subject"] == STYLE and "likeness" not in facts
    losses = {int(step): loss for step, loss in json.loads(facts[heldout.KEY]).items()}
    assert sorted(losses) == [0, 2, 4, 6]  # every sample point, the start included
    after_start = {step: loss for step, loss in losses.items() if step}
    assert int(facts["recommended_step"]) == min(after_start, key=after_start.get)
    assert losses[6] < losses[0]  # the held-out pictures' loss fell as the style was learned
    assert f"recommended: step {facts['recommended_step']} (the lowest loss on the pictures held out" in out
    # No face checks (drawn designs have none, and nothing was left out), one picture of five held out.
    assert "left out" not in err and "held out to measure the style: " in err
    assert len(heldout.held_out(p.name for p in pictures.glob("*.png"))) == 1
    captions = [p.read_text() for p in sorted(pictures.glob("*.txt"))]
    assert len(captions) == 5 and all(c.endswith(f"in the style of {STYLE_TOKEN}") for c in captions)
    # The timeline shows each column's held-out loss where a person's shows its likeness.
    shown = choose_columns(RunLayout(adapter.parent).sample_files(), 6)
    assert shown.losses == losses and shown.recommended == int(facts["recommended_step"]) and not shown.scores
    assert (adapter.parent / "timeline.png").is_file()
    with Image.open(adapter.parent / "samples" / "step-000006-0.png") as sample:
        assert sample.text["doppel:prompt"] == f"a poster for a summer sale, in the style of {STYLE_TOKEN}"


def test_generate_draws_a_person_and_a_style_each_at_its_strength(style_run, people, generator, tmp_path):
    _, style, _ = style_run
    person = people["ANN"]
    code, out, err = run("generate", "--base", "tiny", "--lora", person, "--lora", f"{style}:0.8",
                         "--prompt", "ANN presenting a poster", "--seed", "4", "--out", tmp_path)
    assert code == 0, err
    assert (tmp_path / "seed-4.png").is_file()

    adapters, files = refs((person, None), (style, 0.8))
    assert [a.subject for a in adapters] == [PERSON, STYLE]
    generator.generate(GenerateRequest(base="tiny", prompt="ANN presenting a poster", adapters=adapters, seed=4,
                                       steps=2), files)
    # Exactly both act, each at its own strength, read from peft's layers.
    assert group.acting(generator) == [(a.name, a.identity, w) for a, w in zip(adapters, (1.0, 0.8), strict=True)]

    code, _, err = run("generate", "--base", "tiny", "--lora", f"{style}:0.8", "--weight", "0.5",
                       "--prompt", "a poster", "--out", tmp_path)
    assert code == 2 and "is given a strength twice (':0.8' and --weight 0.5): use one of them" in err


def test_a_style_is_never_used_as_a_person_nor_a_person_as_a_style(style_run, people, generator, tmp_path):
    _, style, _ = style_run
    person = people["ANN"]
    code, _, err = run("group", "--base", "tiny", f"--person=ANN={style}", f"--person=BOB={person}",
                       "--prompt", GROUP_PROMPT, "--out", tmp_path)
    assert code == 2 and "is a style, not ANN's adapter: give it with --style" in err
    code, _, err = run("group", "--base", "tiny", f"--person=ANN={people['ANN']}", f"--person=BOB={people['BOB']}",
                       "--style", person, "--prompt", GROUP_PROMPT, "--out", tmp_path)
    assert code == 2 and "is a person's adapter, not a style" in err

    # Where adapters are used, the file's own subject decides, whatever the request says.
    as_person = AdapterRef("brand", adapter_identity(style.read_bytes()), 1.0, PERSON)
    with pytest.raises(DoppelError, match="'brand' is a style, so it cannot be used as a person's adapter"):
        generator.generate(GenerateRequest(base="tiny", prompt="a mug", adapters=(as_person,), steps=2),
                           {as_person.identity: style})
    as_style = AdapterRef("ann", adapter_identity(person.read_bytes()), 1.0, STYLE)
    with pytest.raises(DoppelError, match="'ann' is a person's adapter, so it cannot be used as a style"):
        generator.generate(GenerateRequest(base="tiny", prompt="a mug", adapters=(as_style,), steps=2),
                           {as_style.identity: person})


def test_a_comparison_with_a_style_draws_the_other_half_without_it(style_run, people, generator):
    _, style, _ = style_run
    adapters, files = refs((people["ANN"], None), (style, 0.8))
    request = GenerateRequest(base="tiny", prompt="ANN with a mug", adapters=adapters, seed=8, steps=2, compare=True)
    sheet = compare_pictures(generator, request, files)
    assert sheet.info["labels"] == f"with a0 | with a0 + {STYLE_TOKEN}"  # ANN's random adapter has no token
    left, right = (np.asarray(h, dtype=np.int16) for h in halves(sheet.image, (64, 64)))
    alone = GenerateRequest(base="tiny", prompt="ANN with a mug", adapters=adapters[:1], seed=8, steps=2)
    without = np.asarray(generator.generate(alone, files)[0].image, dtype=np.int16)
    assert np.abs(left - without).max() <= 1 and np.abs(right - left).mean() > 1


def test_a_group_with_a_style_draws_it_everywhere_and_each_face_only_its_person(style_run, people, generator,
                                                                                 tmp_path):
    _, style, _ = style_run
    adapters, files = refs((people["ANN"], 0.8), (people["BOB"], 1.2), (style, 0.7))
    ann, bob, brand = adapters
    photo = tmp_path / "team.png"
    two_astronauts().save(photo)
    plan = GroupPlan(tokens=("a0", "a1"), photo=GroupPlan.encode_photo(photo.read_bytes()))
    request = GenerateRequest(base="tiny", prompt="a0 and a1 playing poker", adapters=adapters, seed=5, steps=2,
                              group=plan)
    seen: list = []
    picture = group.draw_group(generator, request, files, on_face=lambda name, acting: seen.append((name, acting)))
    assert picture.outcome.fallback is None
    # Each face: its own person and the style, at their strengths; never the other person.
    assert seen == [(p.name, [(p.name, p.identity, p.weight), (brand.name, brand.identity, 0.7)]) for p in (ann, bob)]

    # Without a photo the composition is drawn, and drawn with the style (the people at composition_strength 0).
    drawn = GenerateRequest(base="tiny", prompt="a0 and a1 playing poker", adapters=adapters, seed=5, steps=2,
                            group=GroupPlan(tokens=("a0", "a1")))
    composition = np.asarray(group.draw_group(generator, drawn, files).composition, dtype=np.int16)
    stand_ins = "a person and a person playing poker"
    with_style = GenerateRequest(base="tiny", prompt=stand_ins, adapters=(brand,), seed=5, steps=2)
    plain = GenerateRequest(base="tiny", prompt=stand_ins, seed=5, steps=2)
    assert np.abs(composition - np.asarray(generator.generate(with_style, files)[0].image, np.int16)).max() <= 1
    assert np.abs(composition - np.asarray(generator.generate(plain, files)[0].image, np.int16)).mean() > 1


def test_a_checkpoint_from_before_styles_resumes_as_a_persons(trained, tmp_path):
    saved = trained.checkpoints[0]
    payload = torch.load(saved, map_location="cpu", weights_only=True)
    record = dict(payload["record"])
    assert record["subject"] == PERSON
    del payload["record"]["subject"]  # as checkpoints were written before styles
    older = tmp_path / "older.ckpt"
    torch.save(payload, older)
    assert load_checkpoint(older, record).record["subject"] == PERSON
    with pytest.raises(CheckpointError, match=r"--style \(a person's or a style's\)"):
        load_checkpoint(older, record | {"subject": STYLE})
