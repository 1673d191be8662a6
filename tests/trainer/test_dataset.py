import io

import pytest
from PIL import Image

from contract.subjects import STYLE
from tests.conftest import TOKEN
from tests.photos import face
from trainer.errors import DatasetError
from trainer.training.dataset import buckets_for, caption_with_token, load_training_set, nearest_bucket


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        (None, "photo of THGH96"),
        ("   ", "photo of THGH96"),
        ("a portrait of [trigger] at dusk", "a portrait of THGH96 at dusk"),
        ("[TRIGGER] and [trigger]", "THGH96 and THGH96"),
        ("THGH96 on a bike", "THGH96 on a bike"),
        ("a man on a bike", "THGH96, a man on a bike"),
        ("THGH96X on a bike", "THGH96, THGH96X on a bike"),  # a longer word is not the token
    ],
)
def test_the_token_goes_into_every_caption(caption, expected):
    assert caption_with_token(caption, TOKEN) == expected


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        (None, "an image in the style of THGH96"),
        ("a red mug on a desk.", "a red mug on a desk, in the style of THGH96"),  # the content first, the style last
        ("a mug, [trigger] look", "a mug, THGH96 look"),
        ("THGH96 poster of a mug", "THGH96 poster of a mug"),
    ],
)
def test_a_styles_token_goes_after_the_content(caption, expected):
    assert caption_with_token(caption, TOKEN, STYLE) == expected


@pytest.mark.parametrize("resolution", [64, 512, 768, 1024])
def test_buckets_are_multiples_of_16_near_the_resolution_squared(resolution):
    buckets = buckets_for(resolution)
    assert (resolution, resolution) in buckets
    for width, height in buckets:
        assert width % 16 == 0 and height % 16 == 0
        if resolution >= 512:
            assert abs(width * height / resolution**2 - 1) < 0.1


def test_an_image_goes_to_the_bucket_of_nearest_shape():
    buckets = buckets_for(512)
    assert nearest_bucket(4000, 3000, buckets) == (592, 448)
    assert nearest_bucket(3000, 4000, buckets) == (448, 592)
    assert nearest_bucket(1000, 1000, buckets) == (512, 512)


def test_a_folder_becomes_cropped_captioned_images(photos):
    training_set = load_training_set(photos, TOKEN, 64)
    by_name = {item.name: item for item in training_set.images}
    assert sorted(by_name) == ["me-0.jpg", "me-1.png", "me-2.webp", "me-3.jpg"]
    assert by_name["me-0.jpg"].caption == "a close-up of THGH96 smiling"
    assert by_name["me-2.webp"].caption == "photo of THGH96"
    assert by_name["me-3.jpg"].caption == "photo of THGH96"
    assert by_name["me-0.jpg"].image.size == (64, 64)
    assert by_name["me-1.png"].image.size[0] > by_name["me-1.png"].image.size[1]  # landscape stays landscape
    assert all(item.image.mode == "RGB" for item in training_set.images)


def test_exif_orientation_is_applied(tmp_path):
    # Stored landscape, tagged "rotate 90": the person sees portrait, and so must training.
    exif = Image.Exif()
    exif[0x0112] = 6
    face(120, 80, 0).save(tmp_path / "turned.jpg", exif=exif)
    (item,) = load_training_set(tmp_path, TOKEN, 64).images
    assert item.image.size[1] > item.image.size[0]


def test_the_dataset_hash_follows_captions(tmp_path, photos):
    first = load_training_set(photos, TOKEN, 64).sha256
    assert load_training_set(photos, TOKEN, 64).sha256 == first
    changed = tmp_path / "changed"
    changed.mkdir()
    for path in photos.iterdir():
        (changed / path.name).write_bytes(path.read_bytes())
    (changed / "me-3.txt").write_text("THGH96 at the beach")
    assert load_training_set(changed, TOKEN, 64).sha256 != first


def test_every_bad_file_is_named_with_its_reason(tmp_path):
    face(64, 64, 0).save(tmp_path / "good.jpg")
    buffer = io.BytesIO()
    face(256, 256, 0).save(buffer, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("this is a shopping list, not a picture")
    with pytest.raises(DatasetError) as caught:
        load_training_set(tmp_path, TOKEN, 64)
    reasons = {problem.name: problem.reason for problem in caught.value.problems}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "notes.png"}
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.png"]
    assert str(caught.value).startswith("3 files cannot be used for training")


def test_an_empty_or_missing_folder_is_refused(tmp_path):
    with pytest.raises(DatasetError, match="has no images"):
        load_training_set(tmp_path, TOKEN, 64)
    with pytest.raises(DatasetError, match="does not exist"):
        load_training_set(tmp_path / "nowhere", TOKEN, 64)


def test_the_looks_sent_with_the_photos_are_used_and_only_where_they_fit(tmp_path, photos):
    import json
    import shutil

    import numpy as np

    from contract import LOOKS_FILENAME
    from faces.detect import Face
    from faces.verdict import Look

    folder = shutil.copytree(photos, tmp_path / "photos")
    # No face is found in these drawn ones; the looks sent say each shows one, the same person's.
    descriptor = np.linspace(-0.1, 0.1, 128, dtype=np.float32)
    told = {}
    for path in sorted(folder.glob("me-*.*")):
        if path.suffix == ".txt":
            continue
        with Image.open(path) as opened:
            told[path.name] = Look(opened.size, 100.0, (Face((8, 8, 40, 40), descriptor, "hog"),)).to_data()
    (folder / LOOKS_FILENAME).write_text(json.dumps(told))
    used = load_training_set(folder, TOKEN, 64)
    assert len(used.images) == 4  # the looks file is no photo
    assert used.identity is not None and np.allclose(used.identity, descriptor)

    # A look of another size is not this picture's: every photo is looked at again, and none shows a face.
    for name in told:
        told[name]["size"] = [1, 1]
    (folder / LOOKS_FILENAME).write_text(json.dumps(told))
    assert load_training_set(folder, TOKEN, 64).identity is None


def test_leaving_out_the_doubtful_says_which_and_why_and_refuses_a_set_with_none_left(tmp_path, photos):
    import shutil

    from tests.photos import astronaut, no_face, variants

    folder = tmp_path / "mixed"
    folder.mkdir()
    for index, picture in enumerate([astronaut(), *list(variants(astronaut()).values())[:2]]):
        picture.save(folder / f"{index:03d}.jpg")
    no_face().save(folder / "003.jpg")
    kept = load_training_set(folder, TOKEN, 64, leave_out=True)
    assert [i.name for i in kept.images] == ["000.jpg", "001.jpg", "002.jpg"]
    assert kept.left_out == (("003.jpg", "I see no face in it"),)
    assert len(load_training_set(folder, TOKEN, 64).images) == 4  # without leave_out, all train

    none = shutil.copytree(photos, tmp_path / "faceless")
    with pytest.raises(DatasetError, match="the face checks leave out every photo"):
        load_training_set(none, TOKEN, 64, leave_out=True)


def test_a_told_photo_is_decoded_once_and_still_reported_when_truncated(tmp_path):
    """Told what the bot saw, the loader reads only headers first: a truncated photo shows at its crop, and
    beside another bad file both are named at once."""
    import json

    from contract import LOOKS_FILENAME
    from faces.verdict import Look

    buffer = io.BytesIO()
    face(256, 256, 0).save(buffer, format="JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    face(64, 64, 0).save(tmp_path / "good.jpg")
    told = {name: Look(size, 100.0, ()).to_data() for name, size in [("truncated.jpg", (256, 256)),
                                                                      ("good.jpg", (64, 64))]}
    (tmp_path / LOOKS_FILENAME).write_text(json.dumps(told))
    with pytest.raises(DatasetError) as caught:
        load_training_set(tmp_path, TOKEN, 64)
    assert {p.name: "truncated" in p.reason for p in caught.value.problems} == {"truncated.jpg": True}

    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(DatasetError) as caught:
        load_training_set(tmp_path, TOKEN, 64)
    assert {p.name for p in caught.value.problems} == {"truncated.jpg", "empty.jpg"}


def test_a_large_jpeg_is_decoded_as_finely_as_its_crop_needs_and_comes_out_the_same(tmp_path):
    import numpy as np

    from tests.photos import astronaut
    from trainer.training.dataset import decode_image, training_crop, upright_size

    buffer = io.BytesIO()
    astronaut().resize((2048, 2048)).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    drafted = decode_image(data, at_least=(300, 300))
    assert drafted.size == (512, 512)  # a quarter of each side: the largest scale still over 300
    crop = training_crop(data, upright_size(data), (256, 256))
    full = decode_image(data).resize((256, 256), Image.Resampling.LANCZOS)
    assert crop.size == (256, 256)
    difference = np.abs(np.asarray(crop, dtype=np.float32) - np.asarray(full, dtype=np.float32))
    assert difference.mean() < 2.0  # of 255: the same picture


def test_a_turned_phone_photo_is_sized_and_cropped_upright(tmp_path):
    from trainer.training.dataset import decode_image, training_crop, upright_size

    stored = Image.new("RGB", (1600, 800), "white")
    stored.paste((255, 0, 0), (0, 0, 800, 800))  # red on the stored left: on top once turned (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", exif=exif.tobytes())
    data = buffer.getvalue()
    assert upright_size(data) == (800, 1600)
    assert decode_image(data, at_least=(400, 200)).size == (400, 800)  # drafted to 1/2 of the stored 1600x800
    crop = training_crop(data, upright_size(data), (64, 128))
    assert crop.size == (64, 128)
    top, bottom = crop.getpixel((32, 10)), crop.getpixel((32, 118))
    assert top[0] > 200 and top[1] < 60 and min(bottom) > 200


def test_a_turned_png_is_sized_upright_and_a_truncated_one_is_said_truncated():
    from trainer.training.dataset import decode_image, upright_size

    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    face(256, 128, 0).save(buffer, format="PNG", exif=exif.tobytes())
    whole = buffer.getvalue()
    assert upright_size(whole) == (128, 256) and decode_image(whole).size == (128, 256)
    with pytest.raises(ValueError, match="the image is truncated"):
        decode_image(whole[: len(whole) // 2])
