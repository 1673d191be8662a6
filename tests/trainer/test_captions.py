"""Captions written for photos without one: the wording (real model outputs) and the plumbing (tiny Florence-2)."""

from __future__ import annotations

import pytest

from contract import CaptionsWritten, Phase, PhaseName
from contract.subjects import STYLE
from tests.conftest import TOKEN
from tests.trainer.conftest import MEMBERS_CAPTION
from trainer.captioning import (
    caption_for,
    caption_missing_photos,
    describe_content,
    describe_scene,
    resolve_captioner,
    uncaptioned,
)
from trainer.models.tiny_captioner import is_tiny_captioner
from trainer.training.dataset import load_training_set
from trainer.training.lora_file import read_facts


@pytest.mark.parametrize(
    ("said", "scene"),
    [
        # What Florence-2-base's <CAPTION> says of such photos: the subject and the looks go, the scene stays.
        ("A woman with long brown hair in a white space suit holding a helmet.",
         "in a white space suit holding a helmet"),
        ("A young man is standing in front of a brick wall.", "standing in front of a brick wall"),
        ("a bald man with a beard wearing a black jacket", "wearing a black jacket"),
        ("The image shows a red car parked on a street.", "The image shows a red car parked on a street"),
        ("A smiling 30-year-old woman with blue eyes at the beach", "at the beach"),
    ],
)
def test_the_scene_is_kept_and_the_persons_looks_are_not(said, scene):
    assert describe_scene(said) == scene
    assert caption_for(describe_scene(said), TOKEN) == f"photo of {TOKEN}, {scene}"


@pytest.mark.parametrize(
    ("said", "content"),
    [
        # A style's captions keep every content word (a person's would lose "a man") and drop how it is drawn.
        ("An illustration of a man holding a red coffee mug.", "a man holding a red coffee mug"),
        ("a flat vector illustration of a rocket and the word SALE", "a rocket and the word SALE"),
        ("A logo with a blue circle in a minimalist style.", "A logo with a blue circle"),
        ("The image shows a poster for a summer sale.", "The image shows a poster for a summer sale"),
    ],
)
def test_a_styles_content_is_kept_and_its_style_words_are_not(said, content):
    assert describe_content(said) == content
    assert caption_for(describe_content(said), TOKEN, STYLE) == f"{content}, in the style of {TOKEN}"
    assert caption_for("", TOKEN, STYLE) == f"an image in the style of {TOKEN}"


def test_a_description_with_nothing_left_is_the_token_alone():
    assert caption_for(describe_scene("A man."), TOKEN) == f"photo of {TOKEN}"


def test_photos_without_a_caption_get_one_and_training_uses_it(faces_run, model_cache):
    folder, events, result = faces_run
    assert is_tiny_captioner(resolve_captioner("tiny"))  # built offline into the model cache

    written = [e for e in events if isinstance(e, CaptionsWritten)]
    assert len(written) == 1 and sorted(written[0].captions) == ["bright.png", "mirror.png"]  # crop.png had one
    assert (folder / "crop.txt").read_text() == MEMBERS_CAPTION
    phases = [e.name for e in events if isinstance(e, Phase)]
    assert phases.index(PhaseName.CAPTIONING) < phases.index(PhaseName.READING)  # before anything reads them
    for name, caption in written[0].captions.items():
        assert caption.startswith(f"photo of {TOKEN}")
        assert (folder / name).with_suffix(".txt").read_text() == caption
    assert not uncaptioned(folder)

    # The adapter says which data it learnt from: the photos with the captions just written.
    training_set = load_training_set(folder, TOKEN, 64, faces=False)
    assert read_facts(result.lora_path)["dataset_sha256"] == training_set.sha256
    by_name = {image.name: image.caption for image in training_set.images}
    assert all(by_name[name] == caption for name, caption in written[0].captions.items())


def test_a_members_own_captions_are_kept_and_nothing_loads_when_all_have_one(faces_run, tmp_path):
    folder = faces_run[0]
    before = {p.name: p.read_text() for p in folder.glob("*.txt")}
    events: list = []
    assert caption_missing_photos(folder, TOKEN, "tiny", events.append) == {}
    assert events == []  # no phase, no model: every photo has its caption
    assert {p.name: p.read_text() for p in folder.glob("*.txt")} == before
    (tmp_path / "new.png").write_bytes((folder / "crop.png").read_bytes())
    assert caption_missing_photos(tmp_path, TOKEN, "", events.append) == {}  # captions off
    assert events == [] and not (tmp_path / "new.txt").exists()
    # A captioner that cannot be had (offline, say) leaves the photos as they were and the run goes on.
    assert caption_missing_photos(tmp_path, TOKEN, str(tmp_path / "no-such-model"), events.append) == {}
    assert [e.name for e in events] == [PhaseName.CAPTIONING] and not (tmp_path / "new.txt").exists()


def test_captions_are_on_by_default_and_off_says_so(monkeypatch):
    from contract.settings import WorkSettings

    monkeypatch.delenv("CAPTION_MODEL", raising=False)
    assert WorkSettings(_env_file=None).caption_model == "florence-community/Florence-2-base"
    monkeypatch.setenv("CAPTION_MODEL", "off")  # an empty value is the default, as for every setting
    assert WorkSettings(_env_file=None).caption_model == ""
