"""FLUX.2 [klein]'s reference photos: a person drawn from their photos (no adapter needed), in the generator,
the command line and each face of a group picture; refused in words on FLUX.1, whose pipeline has none."""

from __future__ import annotations

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
