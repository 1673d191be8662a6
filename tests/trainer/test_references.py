"""FLUX.2 [klein]'s reference photos: a person drawn from their photos (no adapter needed), in the generator,
the command line and each face of a group picture; refused in words on FLUX.1, whose pipeline has none."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from contract import GenerateRequest, ReferenceRef, RequestError, reference_identity
from tests.photos import scene
from trainer.errors import DoppelError
from trainer.generation.generator import Generator

BASE = "tiny-klein-distilled"


@pytest.fixture(scope="module")
def distilled(model_cache):
    return Generator(BASE, max_adapters=4)


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reference-photos")
    for k in range(3):
        scene(k, 80, 64).save(folder / f"me-{k}.png")
    return folder


def refs_of(folder: Path, name: str = "me", count: int = 3):
    paths = sorted(folder.glob("*.png"))[:count]
    files = {reference_identity(p.read_bytes()): p for p in paths}
    return tuple(ReferenceRef(name, identity) for identity in files), files


def draw(generator, refs=(), files=None, base=BASE):
    request = GenerateRequest(base=base, prompt="photo of a person", seed=3, references=refs)
    return generator.generate(request, reference_files=files or {})[0]


def test_reference_photos_change_the_picture_and_are_recorded_in_it(distilled, photo_folder):
    refs, files = refs_of(photo_folder)
    plain, drawn, again = draw(distilled), draw(distilled, refs, files), draw(distilled, refs, files)
    # The random tiny klein attends to the photos' tokens only a little: the picture changes, slightly.
    assert not np.array_equal(np.asarray(drawn.image), np.asarray(plain.image))
    assert np.array_equal(np.asarray(drawn.image), np.asarray(again.image))  # the same photos, the same picture
    assert drawn.info["references"] == ", ".join(r.identity for r in refs) and "references" not in plain.info
    assert distilled.base.family.max_references == 4


def test_references_are_squared_to_one_size_whatever_their_shape(distilled, photo_folder, tmp_path):
    tall = tmp_path / "tall.png"
    Image.new("RGB", (30, 90), (200, 10, 10)).save(tall)
    refs, files = refs_of(photo_folder, count=1)
    files[reference_identity(tall.read_bytes())] = tall
    refs += (ReferenceRef("me", reference_identity(tall.read_bytes())),)
    sizes = {image.size for image in distilled.reference_images(refs, files)}
    assert sizes == {(distilled.reference_side(),) * 2}  # one shape: a compiled transformer never recompiles


def test_flux1_refuses_references_in_words_and_draws_without_them(tiny_dir, photo_folder):
    flux1 = Generator("tiny", max_adapters=4)
    refs, files = refs_of(photo_folder, count=1)
    with pytest.raises(DoppelError, match=r"FLUX\.1 cannot draw a person from photos; train an adapter"):
        draw(flux1, refs, files, base="tiny")
    assert draw(flux1, base="tiny").image.size == (64, 64)


def test_the_request_holds_references_to_the_family_limit_and_one_person_per_picture():
    many = tuple(ReferenceRef("me", str(k) * 64) for k in range(5))
    with pytest.raises(RequestError, match="at most 4 reference photos"):
        GenerateRequest(base=BASE, prompt="p", references=many)
    with pytest.raises(RequestError, match="that person's reference photos only"):
        GenerateRequest(base=BASE, prompt="p", references=(ReferenceRef("a", "1" * 64), ReferenceRef("b", "2" * 64)))
    request = GenerateRequest(base=BASE, prompt="p", references=many[:2])
    assert GenerateRequest.from_data(request.to_data()) == request  # travels as plain data


def test_the_cli_draws_from_references_on_klein_and_refuses_on_flux1(model_cache, photo_folder, tmp_path, capsys):
    from trainer.cli import main

    code = main(["generate", "--base", BASE, "--reference", str(photo_folder), "--prompt", "photo of me",
                 "--seed", "5", "--out", str(tmp_path / "klein")])
    assert code == 0 and (tmp_path / "klein" / "seed-5.png").is_file()
    capsys.readouterr()
    code = main(["generate", "--base", "tiny", "--reference", str(photo_folder / "me-0.png"), "--prompt", "me",
                 "--out", str(tmp_path / "flux1")])
    assert code == 2 and not (tmp_path / "flux1").exists()
    assert capsys.readouterr().err.strip() == (
        "error: FLUX.1 cannot draw a person from photos; train an adapter to draw them")
    assert main(["generate", "--base", BASE, "--reference", str(tmp_path / "none"), "--prompt", "me",
                 "--out", str(tmp_path / "x")]) == 2
    assert "there is no photo or folder of photos at" in capsys.readouterr().err


def random_klein_adapter(pipe, folder: Path, seed: int) -> Path:
    """A klein LoRA with random A and B, saved as training saves one (cheap, and unlike any other)."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from trainer.models.families import FLUX2_KLEIN
    from trainer.training.lora_file import save_lora

    torch.manual_seed(seed)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=list(FLUX2_KLEIN.lora_targets), init_lora_weights=False)
    pipe.transformer.add_adapter(config, adapter_name="random")
    state = get_peft_model_state_dict(pipe.transformer, adapter_name="random")
    pipe.transformer.delete_adapters("random")
    return save_lora(folder, state, {}, {"family": FLUX2_KLEIN.name, "base_model": BASE})


def test_each_face_of_a_group_is_redrawn_from_its_own_persons_references(distilled, photo_folder, tmp_path):
    from contract import AdapterRef, adapter_identity
    from contract.group import GroupPlan
    from tests.trainer.test_group import two_astronauts
    from trainer.generation import group

    adapters = {token: random_klein_adapter(distilled.pipe, tmp_path / token, k) for k, token in enumerate("AB")}
    refs = tuple(AdapterRef(t, adapter_identity(p.read_bytes())) for t, p in adapters.items())
    ann, _ = refs_of(photo_folder, "A", count=1)  # A is drawn from one photo, B from two others
    bob, _ = refs_of(photo_folder, "B", count=3)
    bob = bob[1:]
    files = {reference_identity(p.read_bytes()): p for p in photo_folder.glob("*.png")}
    photo = tmp_path / "team.png"
    two_astronauts().save(photo)
    request = GenerateRequest(base=BASE, prompt="A and B at a table", adapters=refs, seed=5, steps=2,
                              group=GroupPlan(tokens=("A", "B"), photo=GroupPlan.encode_photo(photo.read_bytes())),
                              references=ann + bob)
    drawing: list[str] = []
    tokens: dict[str, set[int]] = {}

    def count_tokens(module, args, kwargs):  # what the transformer is given: the picture's and the photos' tokens
        tokens.setdefault(drawing[-1], set()).add(kwargs["hidden_states"].shape[1])

    hook = distilled.pipe.transformer.register_forward_pre_hook(count_tokens, with_kwargs=True)
    try:
        picture = group.draw_group(distilled, request, {r.identity: adapters[r.name] for r in refs},
                                   on_face=lambda name, _: drawing.append(name), reference_files=files)
    finally:
        hook.remove()
    assert picture.outcome.fallback is None and drawing == ["A", "B"]
    side = group.crop_side(distilled)
    per_photo = (distilled.reference_side() // 16) ** 2
    crop = (side // 16) ** 2  # the face's crop, as noise and as the picture redrawn
    assert tokens == {"A": {2 * crop + per_photo}, "B": {2 * crop + 2 * per_photo}}
    assert picture.info["references"] == ", ".join(f"{r.name}:{r.identity}" for r in ann + bob)


def test_a_photo_is_edited_with_the_persons_references_on_klein_and_refused_in_words_on_flux1(distilled,
                                                                                              photo_folder):
    from contract.group import GroupPlan
    from tests.photos import astronaut

    refs, files = refs_of(photo_folder, count=2)
    buffer = io.BytesIO()
    astronaut().save(buffer, format="JPEG")
    photo = GroupPlan.encode_photo(buffer.getvalue())
    edit = GenerateRequest(base=BASE, prompt="make it night", seed=3, references=refs, edit_photo=photo)
    edited = distilled.generate(edit, reference_files=files)[0]
    drawn = draw(distilled, refs, files)
    assert edited.info["edited"] == "the given photo" and not np.array_equal(np.asarray(edited.image),
                                                                            np.asarray(drawn.image))
    with pytest.raises(RequestError, match="at most 3 reference photos"):
        GenerateRequest(base=BASE, prompt="p", edit_photo=photo,
                        references=tuple(ReferenceRef("me", str(k) * 64) for k in range(4)))
    flux1 = Generator("tiny", max_adapters=4)
    with pytest.raises(DoppelError, match=r"FLUX\.1 cannot edit a photo"):
        flux1.generate(GenerateRequest(base="tiny", prompt="make it night", seed=3, edit_photo=photo))
