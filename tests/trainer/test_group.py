"""Group pictures on the tiny model and real photographs: each face redrawn with only its person's adapter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract import AdapterRef, GenerateRequest, adapter_identity
from contract.group import GroupPlan
from trainer.generation import group
from trainer.generation.adapters import Use
from trainer.generation.generator import Generator

PROMPT = "ANN and BOB playing poker"
WEIGHTS = (0.8, 1.2)


def random_adapter(pipe, folder: Path, seed: int) -> Path:
    """A LoRA adapter with random A and B (cheap, and unlike any other), saved as training saves one."""
    from diffusers import FluxPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from trainer.models.families.flux1 import LORA_TARGETS as FLUX_LORA_TARGETS

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=list(FLUX_LORA_TARGETS), init_lora_weights=False)
    pipe.transformer.add_adapter(config, adapter_name="random")
    state = get_peft_model_state_dict(pipe.transformer, adapter_name="random")
    pipe.transformer.delete_adapters("random")
    FluxPipeline.save_lora_weights(folder, transformer_lora_layers=state)
    return folder / "pytorch_lora_weights.safetensors"


def two_astronauts() -> Image.Image:
    """A real photograph of one person beside its mirror image: two faces, far apart."""
    from skimage import data

    one = Image.fromarray(data.astronaut())
    both = Image.new("RGB", (2 * one.width, one.height))
    both.paste(one, (0, 0))
    both.paste(one.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (one.width, 0))
    return both


@pytest.fixture(scope="module")
def generator(tiny_dir):
    return Generator("tiny", max_adapters=4)


@pytest.fixture(scope="module")
def people(generator, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("group-adapters")
    made = {}
    for seed, token in enumerate(("ANN", "BOB")):
        (folder / token).mkdir()
        made[token] = random_adapter(generator.pipe, folder / token, seed)
    return made


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("group-photo") / "team.png"
    two_astronauts().save(path)
    return path


def ask(people, photo: Path | None, **plan):
    refs = tuple(AdapterRef(token, adapter_identity(path.read_bytes()), w)
                 for (token, path), w in zip(people.items(), WEIGHTS, strict=True))
    text = GroupPlan.encode_photo(photo.read_bytes()) if photo else None
    request = GenerateRequest(base="tiny", prompt=PROMPT, adapters=refs, seed=5, steps=4,
                              group=GroupPlan(tokens=tuple(people), photo=text, **plan))
    return request, {ref.identity: people[ref.name] for ref in refs}


def test_each_face_of_a_photo_is_redrawn_with_only_its_persons_adapter(generator, people, photo_png, tiny_dir):
    request, files = ask(people, photo_png)
    seen: list[tuple[str, list]] = []
    picture = group.draw_group(generator, request, files, on_face=lambda name, acting: seen.append((name, acting)))

    outcome = picture.outcome
    assert outcome.fallback is None and len(outcome.faces) == 2
    inpaint = group.inpainting_pipeline(generator)  # the resident modules, not a second copy
    assert inpaint.transformer is generator.pipe.transformer and inpaint.vae is generator.pipe.vae
    left, right = sorted(outcome.faces, key=lambda f: f.box[0])
    assert (left.owner, right.owner) == ("ANN", "BOB")  # left to right in the order named
    assert left.box[2] <= 512 <= right.box[0]
    # During each face's redraw exactly one adapter acted: that person's, at their strength.
    assert seen == [(ref.name, [(ref.name, ref.identity, w)]) for ref, w in zip(request.adapters, WEIGHTS, strict=True)]

    source = two_astronauts()
    regions = [group.head_region(f.box, source.size) for f in (left, right)]
    a, b = regions[0].crop, regions[1].crop
    assert a[2] <= b[0]  # the crops do not overlap, so each face's redraw saw the photo as it was
    outside = (np.asarray(regions[0].mask) == 0) & (np.asarray(regions[1].mask) == 0)
    final, original = np.asarray(picture.image), np.asarray(source)
    assert (final[outside] == original[outside]).all()
    for region in regions:  # and inside each mask the picture changed
        assert (final[np.asarray(region.mask) == 255] != original[np.asarray(region.mask) == 255]).any()

    # Each region is what inpainting with that one adapter alone (a pipeline that never held the other) draws.
    from diffusers import FluxInpaintPipeline

    from trainer.models.base_model import load_pipeline, resolve_base

    alone = load_pipeline(resolve_base("tiny"), torch.float32)
    alone.set_progress_bar_config(disable=True)
    for person, (region, ref) in enumerate(zip(regions, request.adapters, strict=True)):
        alone.load_lora_weights(str(people[ref.name]), adapter_name=ref.name)
        alone.set_adapters([ref.name], [ref.weight])
        prompt = group.replace_tokens(PROMPT, ("ANN", "BOB"), "a person", keep=ref.name)
        expected = group.redraw(FluxInpaintPipeline.from_pipe(alone), source, region, prompt,
                                group.face_seed_for(5, person, 0), side=group.crop_side(generator), steps=4,
                                strength=0.7, guidance=generator.base.guidance,
                                max_sequence_length=generator.base.max_sequence_length)
        alone.delete_adapters(ref.name)
        x0, y0, x1, y1 = region.crop
        assert (final[y0:y1, x0:x1] == np.asarray(expected)[y0:y1, x0:x1]).all()


def test_a_face_is_never_drawn_with_anyone_elses_adapter(generator, people):
    request, files = ask(people, None)
    ann, bob = (Use(ref, files[ref.identity]) for ref in request.adapters)
    with generator.using([ann, bob]), pytest.raises(group.AdapterLeak, match="ANN's face would be drawn with"):
        group._only(generator, ann.ref)
    with generator.using([]), pytest.raises(group.AdapterLeak, match="no adapter"):
        group._only(generator, ann.ref)


def test_faces_go_to_the_people_they_resemble_most():
    cost = np.array([[0.9, 0.2], [0.3, 0.8], [0.7, 0.7]])  # three faces, two people
    assert group._least_cost(cost) == [1, 0]

    class Found:
        def __init__(self, box):
            self.box, self.descriptor = box, None

    faces = [Found((300, 0, 340, 40)), Found((0, 0, 10, 10)), Found((10, 0, 60, 50))]
    # Without identities: the two largest faces, left to right, in naming order; the small extra keeps its looks.
    assert group.assign(faces, [None, None], distance=None) == [2, 0]


def test_the_command_line_writes_the_picture_and_who_is_where(people, tmp_path, tiny_dir):
    from trainer.cli import main

    persons = [f"--person={token}={path}" for token, path in people.items()]
    status = main(["group", "--base", "tiny", *persons, "--prompt", PROMPT, "--seed", "3", "--steps", "2",
                   "--out", str(tmp_path)])
    assert status == 0
    # The tiny model draws noise: no face in the composition, so the picture is the composition, and says why.
    facts = json.loads((tmp_path / "group-3.json").read_text())
    assert facts["fallback"] == "I found no face for 2 people in the composition" and facts["faces"] == []
    assert facts["people"] == ["ANN", "BOB"] and (tmp_path / "group-3.png").is_file()

    assert main(["group", "--base", "tiny", persons[0], "--prompt", PROMPT, "--out", str(tmp_path)]) == 2
    assert main(["group", "--base", "tiny", *persons, "--photos", f"ANN={tmp_path / 'none'}", "--prompt", PROMPT,
                 "--out", str(tmp_path)]) == 2


def test_a_face_that_does_not_pass_is_redrawn_with_other_seeds_and_scored(generator, people, tmp_path):
    """The tiny model redraws noise, so a known identity never passes: every try is made, each its own seed."""
    from skimage import data

    import faces

    one = Image.fromarray(data.astronaut())
    (astronaut,) = faces.find_faces(one)
    photo = tmp_path / "one.png"
    one.save(photo)
    ann = AdapterRef("ANN", adapter_identity(people["ANN"].read_bytes()))
    plan = GroupPlan(tokens=("ANN",), photo=GroupPlan.encode_photo(photo.read_bytes()), retries=1,
                     identities=(tuple(astronaut.descriptor.tolist()),))
    request = GenerateRequest(base="tiny", prompt="ANN in space", adapters=(ann,), seed=5, steps=2, group=plan)
    seeds: list[int] = []
    picture = group.draw_group(generator, request, {ann.identity: people["ANN"]},
                               on_face=lambda name, acting: seeds.append(len(seeds)))
    (face,) = picture.outcome.faces
    assert face.owner == "ANN" and face.tries == 2 and not face.passed and face.score is None
    assert len(seeds) == 2 and group.face_seed_for(5, 0, 0) != group.face_seed_for(5, 0, 1)
    assert picture.outcome.threshold == faces.SAME_PERSON


def test_the_command_line_says_each_face_as_its_json_does():
    from contract.group import PlacedFace

    box = (0, 0, 8, 8)
    said = PlacedFace(box, "ANN", None, False, 3).verdict()
    assert said == "did not pass: no face found where it was redrawn after 3 tries"
    assert PlacedFace(box, "ANN", 0.31, True, 1).verdict() == "distance 0.31, passed after 1 try"
    assert PlacedFace(box, "ANN", 0.72, False, 3).verdict() == "distance 0.72, did not pass after 3 tries"
    assert PlacedFace(box, "ANN").verdict() == "not scored"  # no photos to score against
    assert PlacedFace(box).verdict() == "kept as the composition drew it"
