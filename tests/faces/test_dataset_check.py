"""`python -m trainer dataset check`: a verdict per file, a summary, and the exit status says if it can train."""

from __future__ import annotations

import json

from tests.photos import astronaut, cameraman, jpeg, no_face, variants
from trainer.cli import main


def test_each_file_gets_its_verdict_and_too_few_usable_photos_fail(tmp_path, capsys):
    her = variants(astronaut())
    astronaut().save(tmp_path / "her.jpg")
    jpeg(astronaut(), 80).save(tmp_path / "her-again.jpg")
    her["mirror"].save(tmp_path / "mirror.jpg")
    her["crop"].save(tmp_path / "close.png")
    cameraman().save(tmp_path / "someone.jpg")
    no_face().save(tmp_path / "coffee.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a picture")

    assert main(["dataset", "check", "--images", str(tmp_path), "--json"]) == 1  # 3 usable, 10 needed
    report = json.loads(capsys.readouterr().out)
    files = {f["name"]: f for f in report["photos"]}
    assert report["usable"] == 3 and report["minimum"] == 10 and not report["enough"]
    assert {name for name, f in files.items() if f["usable"]} == {"her-again.jpg", "mirror.jpg", "close.png"}
    assert files["someone.jpg"]["same_person"] is False and files["someone.jpg"]["distance"] > 0.6
    assert files["mirror.jpg"]["same_person"] is True
    assert files["coffee.jpg"]["faces"] == 0 and files["broken.jpg"]["faces"] is None
    assert files["her.jpg"]["duplicate_of"] == "her-again.jpg"

    usable = tmp_path / "usable"
    usable.mkdir()
    for name in ("her-again.jpg", "mirror.jpg", "close.png"):
        (tmp_path / name).rename(usable / name)
    assert main(["dataset", "check", "--images", str(usable), "--min-photos", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("her-again.jpg: 1 face, same person (distance 0.") and lines[1].endswith("): usable")
    assert lines[-1] == "3 photos, 3 usable. Enough to train a likeness (at least 3)."


def test_a_missing_folder_is_bad_input(tmp_path, capsys):
    assert main(["dataset", "check", "--images", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
