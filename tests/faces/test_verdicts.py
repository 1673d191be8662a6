"""Verdicts on a set of photos, and the crops training takes from them."""

from __future__ import annotations

from faces.crops import crop_box
from faces.verdict import IDENTITY_FROM, Look, judge


def test_a_camera_photo_among_the_astronauts_is_flagged_exactly(astronaut_set, cameraman_look):
    looks = list(astronaut_set.values())
    looks.insert(2, cameraman_look)
    verdicts = judge(looks)
    flagged = [index for index, v in enumerate(verdicts) if v is not None and v.doubts]
    assert flagged == [2]
    assert verdicts[2].someone_else and "does not look like" in verdicts[2].doubts[0]
    assert all(v is not None and v.label().startswith("you") for i, v in enumerate(verdicts) if i != 2)


def test_the_first_photos_are_judged_again_as_the_set_grows(astronaut_set, cameraman_look):
    early = [cameraman_look, astronaut_set["original"]]
    assert all(v is not None and not v.doubts and v.distance is None for v in judge(early))  # no identity yet
    grown = early + [astronaut_set[name] for name in ("mirror", "crop", "dark")][: IDENTITY_FROM]
    assert [bool(v and v.someone_else) for v in judge(grown)] == [True] + [False] * (len(grown) - 1)


def test_no_face_and_two_faces_get_their_verdicts(astronaut_set, coffee_look, pair_look):
    set_of = [*astronaut_set.values(), coffee_look, pair_look]
    *_, coffee, pair = judge(set_of)
    assert coffee is not None and coffee.faces == 0 and coffee.doubts == ["I see no face in it"]
    assert coffee.label() == "no face"
    assert pair is not None and pair.faces == 2 and pair.doubts == ["I see 2 faces in it"]
    assert pair.face is not None and pair.face.box[2] <= 512 and not pair.someone_else  # hers is the left one
    assert len(pair.others) == 1 and pair.others[0][0] >= 512
    assert pair.label().startswith("2 faces, you found")
    # Without an identity the member's face among two is unknown.
    (alone,) = judge([pair_look])
    assert alone is not None and alone.face is None and len(alone.others) == 2


def test_looks_keep_through_json(pair_look):
    again = Look.from_json(pair_look.to_json())
    assert again.size == pair_look.size and [f.box for f in again.faces] == [f.box for f in pair_look.faces]
    assert all((a.descriptor == b.descriptor).all() for a, b in zip(again.faces, pair_look.faces, strict=True))


def inside(box, window):
    return window[0] <= box[0] and window[1] <= box[1] and box[2] <= window[2] and box[3] <= window[3]


def test_a_tall_portraits_crop_keeps_the_face_that_a_centred_crop_cuts(astronaut_set):
    face = astronaut_set["original"].faces[0].box  # near the top of a 512 x 1536 portrait below
    assert not inside(face, crop_box((512, 1536), (512, 1024)))
    window = crop_box((512, 1536), (512, 1024), face)
    assert inside(face, window) and window[2] - window[0] == 512 and window[3] - window[1] == 1024


def test_a_crop_around_the_members_face_leaves_the_other_out(pair_look, astronaut_set):
    (_, pair) = judge([*astronaut_set.values(), pair_look])[-2:]
    assert pair is not None and pair.face is not None
    window = crop_box(pair_look.size, (512, 512), pair.face.box, pair.others)
    assert inside(pair.face.box, window) and window[2] <= pair.others[0][0]
