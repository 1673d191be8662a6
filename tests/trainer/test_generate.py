import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from contract import AdapterRef, GenerateRequest, RequestError, SourcePicture, adapter_identity, picture_identity
from tests.conftest import TOKEN
from trainer.errors import CannotDraw, DoppelError
from trainer.generation.compare import compare_pictures, halves
from trainer.generation.generator import Generator, preset_size, redraw_size
from trainer.models.families import FLUX1

PROMPT = f"photo of {TOKEN} on a beach"


class Use:
    """An adapter a test request uses: the contract's reference to it, and its file."""

    def __init__(self, name, path, weight=1.0):
        self.path = Path(path)
        identity = adapter_identity(self.path.read_bytes()) if self.path.is_file() else "absent"
        self.ref = AdapterRef(name, identity, weight)


def ask(prompt=PROMPT, uses=(), **fields):
    """The contract's request and the identity -> file map that goes with it."""
    uses = tuple(uses)
    request = GenerateRequest(base="tiny", prompt=prompt, adapters=tuple(u.ref for u in uses), **fields)
    return request, {u.ref.identity: u.path for u in uses}


def make(generator, prompt=PROMPT, uses=(), **fields):
    return generator.generate(*ask(prompt, uses, **fields))


@pytest.fixture(scope="module")
def adapters(trained, tmp_path_factory):
    """Five distinct adapter files: the trained one, and copies with scaled B matrices."""
    folder = tmp_path_factory.mktemp("adapters")
    tensors = load_file(trained.lora_path)
    paths = {}
    for k, scale in enumerate((1.0, -1.0, 2.0, 0.5, -2.0)):
        scaled = {key: value * scale if "lora_B" in key else value for key, value in tensors.items()}
        paths[f"member{k}"] = folder / f"member{k}.safetensors"
        save_file(scaled, paths[f"member{k}"])
    return paths


@pytest.fixture(scope="module")
def generator(tiny_dir):
    return Generator("tiny", max_adapters=4)


def _pixels(result):
    return np.asarray(result.image, dtype=np.int16)


def _one(generator, *adapters, seed=11):
    return _pixels(make(generator, uses=adapters, seed=seed)[0])


def test_images_come_with_their_seeds_and_each_seed_reproduces_its_image(generator):
    four = make(generator, count=4, seed=100)
    assert [r.seed for r in four] == [100, 101, 102, 103]
    again = make(generator, count=1, seed=102)[0]
    assert np.abs(_pixels(four[2]) - _pixels(again)).max() <= 1
    assert np.abs(_pixels(four[0]) - _pixels(four[1])).mean() > 1
    random_seed = make(generator)[0]
    assert 0 <= random_seed.seed < 2**32


@pytest.mark.parametrize(("preset", "shape"), [("square", (64, 64)), ("portrait", (48, 80)), ("landscape", (80, 48))])
def test_size_presets(generator, preset, shape):
    (result,) = make(generator, size=preset, seed=1)
    assert result.image.size == shape


def test_real_flux_size_presets_keep_about_a_megapixel():
    for preset in ("square", "portrait", "landscape"):
        width, height = preset_size(preset, 1024)
        assert width % 16 == 0 and height % 16 == 0
        assert abs(width * height / 1024**2 - 1) < 0.05


def test_switching_adapters_and_back_reproduces_pictures_exactly(generator, adapters):
    base = _one(generator)
    first = _one(generator, Use("member0", adapters["member0"]))
    second = _one(generator, Use("member1", adapters["member1"]))
    assert np.abs(first - base).mean() > 1 and np.abs(second - first).mean() > 1
    assert np.array_equal(_one(generator, Use("member0", adapters["member0"])), first)
    assert np.array_equal(_one(generator), base)


def test_weights_mix_several_adapters(generator, adapters):
    zero = _one(generator, Use("member0", adapters["member0"], 0.0))
    assert np.array_equal(zero, _one(generator))  # strength 0 is the base picture
    alone = _one(generator, Use("member0", adapters["member0"]))
    mixed = _one(generator, Use("member0", adapters["member0"], 1.0), Use("member2", adapters["member2"], 0.5))
    assert np.abs(mixed - alone).mean() > 1


def test_the_least_recently_used_adapter_is_evicted(generator, adapters):
    for name in ("member0", "member1", "member2", "member3"):
        _one(generator, Use(name, adapters[name]))
    _one(generator, Use("member0", adapters["member0"]))  # now the most recent
    _one(generator, Use("member4", adapters["member4"]))
    assert generator.loaded_adapters == ["member2", "member3", "member0", "member4"]
    assert len(generator.pipe.transformer.peft_config) == 4


def test_a_retrained_adapter_is_reloaded(generator, adapters, tmp_path):
    path = tmp_path / "changing.safetensors"
    path.write_bytes(adapters["member0"].read_bytes())
    before = _one(generator, Use("changing", path))
    path.write_bytes(adapters["member1"].read_bytes())
    after = _one(generator, Use("changing", path))
    assert np.array_equal(after, _one(generator, Use("member1", adapters["member1"])))
    assert not np.array_equal(before, after)


def test_hotswap_gives_the_pictures_a_normal_load_gives(generator, adapters, tiny_dir):
    swapping = Generator("tiny", max_adapters=4, hotswap=True)
    for name in ("member0", "member1", "member2", "member3", "member4", "member0"):
        use = Use(name, adapters[name])
        assert np.array_equal(_one(swapping, use), _one(generator, use)), name
    assert len(swapping.pipe.transformer.peft_config) == 4  # slots reused, not added


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prompt": ""}, "prompt is empty"),
        ({"count": 5}, "number of pictures must be between 1 and 4"),
        ({"size": "huge"}, "size must be one of"),
        ({"source": SourcePicture("abc", 0.0)}, "strength of a redraw must be above 0"),
        ({"source": SourcePicture("abc", 0.3, 4)}, "scale of a redraw must be between 1 and 2"),
    ],
)
def test_bad_requests_are_refused_with_a_reason_before_reaching_the_generator(fields, message):
    with pytest.raises(RequestError, match=message):
        ask(**fields)


def test_a_source_picture_travels_after_the_adapters_and_survives_the_job_record():
    request = GenerateRequest(base="tiny", prompt="x", adapters=(AdapterRef("ann", "a1"),),
                              source=SourcePicture("p1", 0.4, 2))
    assert GenerateRequest.from_data(json.loads(json.dumps(request.to_data()))) == request
    assert request.file_identities == ("a1", "p1")


def test_an_adapter_without_its_file_is_refused(generator, adapters):
    with pytest.raises(DoppelError, match="missing"):
        make(generator, uses=[Use("ghost", "/nowhere.safetensors")])
    request, _ = ask(uses=[Use("newcomer", adapters["member0"])], seed=3)
    with pytest.raises(DoppelError, match="missing"):
        generator.generate(request, {})


def test_a_held_adapter_is_never_read_again(adapters, tmp_path):
    for hotswap in (False, True):
        generator = Generator("tiny", max_adapters=4, hotswap=hotswap)
        path = tmp_path / f"kept-{hotswap}.safetensors"
        path.write_bytes(adapters["member0"].read_bytes())
        use = Use("kept", path)
        drawn = _one(generator, use)
        assert generator.holds(use.ref)
        path.unlink()
        request, _ = ask(uses=[use], seed=11)
        assert np.array_equal(_pixels(generator.generate(request)[0]), drawn)  # no file given, none needed


def test_compare_puts_the_base_model_beside_the_adapter_with_one_seed(generator, adapters):
    use = Use("member0", adapters["member0"])
    request, files = ask(uses=[use], compare=True, count=2)
    progress = []
    picture = compare_pictures(generator, request, files, on_step=lambda *p: progress.append(p))
    steps = generator.base.inference_steps
    assert progress == [(k, 2 * steps) for k in range(1, 2 * steps + 1)]
    assert picture.info["compare"] == "base | adapter" and picture.info["seed"] == picture.seed
    base, tuned = (np.asarray(half, dtype=np.int16) for half in halves(picture.image, (64, 64)))
    assert np.array_equal(base, _one(generator, seed=picture.seed))
    assert np.array_equal(tuned, _one(generator, use, seed=picture.seed))


def test_a_file_that_is_not_an_adapter_is_refused_and_nothing_breaks(generator, tmp_path):
    bogus = tmp_path / "bogus.safetensors"
    save_file({"something.weight": torch.zeros(2, 2)}, bogus)
    with pytest.raises(DoppelError, match="could not be loaded"):
        make(generator, uses=[Use("bogus", bogus)])
    assert make(generator, seed=3)


def test_a_forgotten_adapter_is_unloaded(adapters, tiny_dir):
    for hotswap in (False, True):
        generator = Generator("tiny", max_adapters=4, hotswap=hotswap)
        base = _one(generator)
        drawn = _one(generator, Use("member0", adapters["member0"]))
        generator.forget("member0")
        assert "member0" not in generator.loaded_adapters
        assert np.array_equal(_one(generator), base)
        assert np.array_equal(_one(generator, Use("member1", adapters["member1"])),
                              _one(Generator("tiny", max_adapters=4), Use("member1", adapters["member1"])))
        assert not np.array_equal(drawn, base)


def draw_from(generator, picture, seed=9, **fields):
    """A picture drawn from `picture` (as the worker hands it over: its image, named by its PNG's content)."""
    request, files = ask(source=SourcePicture(picture_identity(picture.png()), **fields), seed=seed)
    return generator.generate(request, files, source=picture.image)[0]


def test_a_variation_is_drawn_from_its_picture_and_an_upscale_at_twice_the_side(generator):
    first = make(generator, seed=5)[0]
    varied = _pixels(draw_from(generator, first, strength=0.4))
    assert np.abs(varied - _pixels(make(generator, seed=9)[0])).mean() > 1  # the same seed, from nothing
    upscaled = draw_from(generator, first, seed=5, strength=0.3, scale=2)
    assert upscaled.image.size == (128, 128) and upscaled.info["drawn from"].endswith("at strength 0.3")
    request, _ = ask(source=SourcePicture(picture_identity(first.png()), 0.4), seed=9)
    with pytest.raises(DoppelError, match="did not come with the request"):
        generator.generate(request)


def test_an_upscale_stays_within_the_family_s_largest_picture_and_a_family_without_a_way_says_so():
    width, height = redraw_size(1024, 1024, 2, FLUX1.largest_pixels)
    assert width > 1024 and width * height <= FLUX1.largest_pixels and width % 16 == 0
    assert redraw_size(64, 48, 2, FLUX1.largest_pixels) == (128, 96)

    class NoImageToImage(type(FLUX1)):  # type: ignore[misc]
        img2img_class_name = None

    with pytest.raises(CannotDraw, match="FLUX.1 cannot draw a picture from another"):
        NoImageToImage().image_to_image(None, None)
