"""Likeness: scoring on real photographs (the tiny model draws noise without faces), plumbing on the tiny model."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from contract import RunLayout
from tests.conftest import TOKEN
from tests.photos import astronaut, cameraman, no_face
from trainer.images import save_png
from trainer.training import likeness
from trainer.training.dataset import load_training_set
from trainer.training.lora_file import read_facts
from trainer.training.timeline import CELL, DISCORD_WIDTH, READABLE, Geometry, choose_columns, timeline

PROMPTS = ("photo of THGH96, portrait, natural light", "THGH96 as an astronaut on the moon, digital art")


@pytest.fixture(scope="module")
def identity(astronaut_photos):
    found = load_training_set(astronaut_photos, TOKEN, 64).identity
    assert found is not None  # the medoid of the three faces (faces.identity_of)
    return found


@pytest.fixture(scope="module")
def scored(identity):
    """Real photographs as a run's samples might look, each with its likeness (scored once: dlib is slow)."""
    pictures = {"member": astronaut(), "close-up": astronaut().crop((96, 16, 416, 336)), "other": cameraman(),
                "nobody": no_face()}
    return {name: (picture, likeness.likeness(picture, identity)) for name, picture in pictures.items()}


def test_a_sample_of_the_member_scores_better_than_one_of_someone_else(scored):
    member, other = scored["member"][1], scored["other"][1]
    assert member is not None and other is not None
    assert member > 1 - 0.6 > other  # the member's face by dlib's measure; the cameraman's is not
    assert scored["nobody"][1] is None  # no face found is a score too


def test_the_recommended_step_is_the_most_alike_that_draws_every_prompt_and_ties_go_early():
    steps = [0, 10, 20, 30, 40]
    # Step 0 is where the run started: never recommended, however alike.
    assert likeness.recommended({0: 0.9, 10: 0.5, 20: 0.7, 30: 0.6, 40: None}, steps) == 20
    assert likeness.recommended({10: 0.7, 20: 0.71, 30: 0.715}, steps) == 10  # within TIE of the best
    assert likeness.recommended({10: None, 20: None}, steps) is None
    assert likeness.step_score({0: 0.7, 1: None}, 2) is None  # a prompt drew no face: the step does not count
    assert likeness.step_score({0: 0.7, 1: 0.5}, 2) == 0.6


def _samples(tmp_path, scored):
    """A run's samples as the sampler writes them: the start (small, no face), someone else, the member, and
    the member for one prompt but no face for the other."""
    layout = RunLayout(tmp_path)
    start = (scored["nobody"][0].resize((64, 64)), None)
    drawn = {0: (start, start), 10: (scored["other"],) * 2, 20: (scored["member"],) * 2,
             30: (scored["close-up"], scored["nobody"])}
    for step, pictures in drawn.items():
        for index, (prompt, (picture, score)) in enumerate(zip(PROMPTS, pictures, strict=True)):
            save_png(picture, layout.sample(step, index), {"prompt": prompt, likeness.KEY: likeness.as_text(score)})
    return layout.sample_files()


def test_the_timeline_shows_each_score_and_marks_the_recommended_step(tmp_path, scored):
    samples = _samples(tmp_path, scored)
    shown = choose_columns(samples, 30)
    assert shown.steps == [0, 10, 20, 30]
    assert shown.scores[0] is None and shown.scores[30] is None  # a prompt drew no face
    assert shown.scores[20] > shown.scores[10]
    assert shown.recommended == 20
    assert shown.likeness == (None, shown.scores[10], shown.scores[20], None)

    sheet = timeline(samples, shown)
    # Four columns of at least CELL px (the 64 px start enlarged), two prompt rows, labels and scores around them.
    assert sheet.width > 4 * CELL and sheet.height > 2 * CELL
    # Its text as Discord shows the sheet (DISCORD_WIDTH wide) is READABLE px or more.
    at = Geometry.for_cells(4, CELL)
    assert at.small * DISCORD_WIDTH / sheet.width >= READABLE and at.text > at.small
    # The start column's 64 px sample enlarged 4x without smoothing: blocks of 4 equal pixels.
    start = sheet.crop((at.prompts_width, at.header, at.prompts_width + CELL, at.header + CELL))
    pixels = start.load()
    assert all(pixels[x, y] == pixels[x - x % 4, y - y % 4] for x in range(0, CELL, 7) for y in range(0, CELL, 5))


def test_samples_are_scored_and_the_scores_reach_the_timeline_the_events_and_the_adapter(faces_run):
    from trainer.training.progress import SampleEvent
    from trainer.worker import _to_wire

    _, events, result = faces_run
    assert result.timeline_steps == (0, 1)
    assert result.likeness == (None, None)  # scored, and noise shows no face
    assert result.recommended is None
    with Image.open(result.samples[-1]) as sample:
        assert sample.info["doppel:likeness"] == likeness.NO_FACE
    wired = _to_wire(next(e for e in events if isinstance(e, SampleEvent)))
    assert wired.likeness == (None, None)  # one per prompt, across the seam
    facts = read_facts(result.lora_path)
    assert json.loads(facts["likeness"]) == {"0": None, "1": None}
    assert "recommended_step" not in facts
    with Image.open(result.timeline) as picture:
        assert picture.width > 2 * CELL
