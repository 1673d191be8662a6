"""Group pictures: a composition without identities, then each face redrawn with only its person's adapter.

Mixing several adapters over a whole picture blends their faces (each adapter acts on every
face). So the picture is made in two passes on the one resident pipeline:

1. The composition: the prompt with each person's token replaced by a neutral stand-in
   ("a person"), drawn with no adapter (or all of them, weakly), or the member's photo.
2. The faces: found with `faces.find_faces`, given to the people (by identity when every
   person's is known, else left to right in the order they were named), and each redrawn
   inside a soft mask over head and hair by the inpainting pipeline that shares the resident
   modules, with exactly that person's adapter active. Only a crop around the face is
   redrawn, at partial strength, and the composition is pasted back outside the mask (the
   VAE round trip changes every pixel it decodes). A face that does not pass as its person
   is redrawn with another seed, up to the plan's retries; the best try is kept.

A style (`request.styles`) acts in both passes at its strength: the composition carries it, and each face is
redrawn with its own person's adapter and the styles, so the face sits in the picture's style; a face never
gets another person's adapter.
"""

from __future__ import annotations

import io
import itertools
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from contract import AdapterRef, GenerateRequest, ReferenceRef, limits
from contract.group import OUTCOME_KEY, GroupOutcome, GroupPlan, PlacedFace, fewer_faces
from trainer.errors import DoppelError
from trainer.generation.adapters import CompiledSlots, NamedAdapters, Use
from trainer.generation.generator import NO_FILES, GeneratedImage, Generator
from trainer.training.dataset import round_side

MAX_PHOTO_SIDE = 1536  # a team photo larger than this is shrunk first: faces stay plenty large
HEAD_SCALE = 2.2  # the redrawn square's side, in face-box sides: head, hair and the mask's soft edge
_inpainters: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class AdapterLeak(RuntimeError):
    """A face was about to be drawn with adapters other than exactly its person's."""


@dataclass(frozen=True)
class Region:
    """Where a face is redrawn: the square crop (left, top, right, bottom) and the soft mask over the canvas."""

    crop: tuple[int, int, int, int]
    mask: Image.Image  # "L", the canvas's size: 255 is redrawn, 0 keeps the composition


@dataclass
class GroupPicture:
    image: Image.Image
    seed: int
    outcome: GroupOutcome
    composition: Image.Image
    info: dict = field(default_factory=dict)

    @property
    def generated(self) -> GeneratedImage:
        """As any picture the generator makes; its PNG text carries the outcome (who is where)."""
        info = self.info | {OUTCOME_KEY: self.outcome.to_json(), "seed": self.seed}
        return GeneratedImage(self.image, self.seed, info)

    def png(self) -> bytes:
        return self.generated.png()


# ---- the one place that builds the inpainting pipeline (model families may give their own) ----------


def inpainting_pipeline(generator: Generator) -> Any:
    """An inpainting pipeline on the generator's resident modules: the same transformer, VAE and
    encoders (no second copy in memory); adapters loaded into one are active in the other."""
    pipe = generator.pipe
    inpaint = _inpainters.get(pipe)
    if inpaint is None:
        inpaint = generator.base.family.inpaint_pipeline(pipe)  # FLUX.1's or FLUX.2 [klein]'s, by `from_pipe`
        inpaint.set_progress_bar_config(disable=True)
        _inpainters[pipe] = inpaint
    return inpaint


# ---- prompts -----------------------------------------------------------------------------


def replace_tokens(prompt: str, tokens: Sequence[str], stand_in: str, keep: str | None = None) -> str:
    """The prompt with each token (a whole word) but `keep` replaced by the stand-in."""
    others = [t for t in tokens if t != keep]
    if not others:
        return prompt
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, others)) + r")\b")
    return pattern.sub(stand_in, prompt)


# ---- geometry ----------------------------------------------------------------------------


def head_region(box: tuple[int, int, int, int], canvas: tuple[int, int]) -> Region:
    """A square around a face box reaching over hair and chin, inside the canvas, and an elliptic mask
    over head and hair in it whose edge fades out before the square's border."""
    left, top, right, bottom = box
    w, h = max(1, right - left), max(1, bottom - top)
    cx, cy = (left + right) / 2, (top + bottom) / 2 - 0.15 * h  # hair sits above the box dlib gives
    side = min(int(HEAD_SCALE * max(w, h)), *canvas)
    x0 = int(min(max(0, cx - side / 2), canvas[0] - side))
    y0 = int(min(max(0, cy - side / 2), canvas[1] - side))
    crop = (x0, y0, x0 + side, y0 + side)
    mask = Image.new("L", canvas, 0)
    rx, ry = 0.75 * w, 0.95 * h
    ImageDraw.Draw(mask).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    feather = max(1.0, 0.12 * max(w, h))
    mask = mask.filter(ImageFilter.GaussianBlur(feather))
    # Nothing outside the crop is ever touched, however the blur spread.
    inside = Image.new("L", canvas, 0)
    inside.paste(255, crop)
    return Region(crop, Image.fromarray(np.minimum(np.asarray(mask), np.asarray(inside))))


def crop_side(generator: Generator) -> int:
    """The side a face crop is drawn at: half the model's resolution (a quarter of its pixels)."""
    return round_side(generator.base.image_resolution / 2)


# ---- assignment --------------------------------------------------------------------------


def assign(faces: Sequence[Any], identities: Sequence[np.ndarray | None], distance: Callable) -> list[int]:
    """The face index for each person. With every identity known: the assignment of least total distance.
    Otherwise the largest faces, left to right, in the order the people were named."""
    people = len(identities)
    if all(i is not None for i in identities):
        cost = np.array([[distance(f.descriptor, i) for i in identities] for f in faces])
        return _least_cost(cost)
    largest = sorted(range(len(faces)), key=lambda k: -_area(faces[k].box))[:people]
    return sorted(largest, key=lambda k: faces[k].box[0])


def _least_cost(cost: np.ndarray) -> list[int]:
    """Row (face) for each column (person), minimising the sum; faces >= people."""
    try:
        from scipy.optimize import linear_sum_assignment  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        faces, people = cost.shape
        best = min(itertools.permutations(range(faces), people),
                   key=lambda rows: sum(cost[r, c] for c, r in enumerate(rows)))
        return list(best)
    rows, cols = linear_sum_assignment(cost)
    by_person = dict(zip(cols.tolist(), rows.tolist(), strict=True))
    return [by_person[c] for c in range(cost.shape[1])]


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


# ---- which adapters act ------------------------------------------------------------------


def acting(generator: Generator) -> list[tuple[str, str, float]]:
    """(name, identity, strength) of each adapter that acts on the transformer now, read from peft's own
    layers (which adapters are active and their scales) and from what the strategy put in each slot."""
    from peft.tuners.lora import LoraLayer

    layer = next((m for m in generator.pipe.transformer.modules() if isinstance(m, LoraLayer)), None)
    if layer is None or layer.disable_adapters:
        return []
    active = list(layer.active_adapters)
    strategy = generator.adapters
    if isinstance(strategy, CompiledSlots):
        held = {f"fixed{k + 1}": holding for k, holding in enumerate(strategy._in_slot)}
        return [held[slot] for slot in active if held.get(slot) is not None]  # type: ignore[misc]
    assert isinstance(strategy, NamedAdapters)  # noqa: S101  (a generator holds compiled slots or named adapters)
    owner = {slot.name: (name, slot.identity) for name, slot in strategy._slots.items()}
    found = []
    for slot in active:
        name, identity = owner.get(slot, ("?" + slot, "?"))
        unit = layer.lora_alpha[slot] / layer.r[slot]
        found.append((name, identity, round(float(layer.scaling[slot]) / unit, 6)))
    return found


def _only(generator: Generator, ref: AdapterRef, styles: Sequence[AdapterRef] = ()) -> None:
    """Refuse to draw `ref`'s face unless exactly its adapter acts, with the picture's styles at their strengths."""
    now = acting(generator)
    if now != [(a.name, a.identity, round(a.weight, 6)) for a in (ref, *styles)]:
        raise AdapterLeak(f"{ref.name}'s face would be drawn with {now or 'no adapter'}")


# ---- drawing -----------------------------------------------------------------------------


def draw_group(
    generator: Generator,
    request: GenerateRequest,
    adapter_files: Mapping[str, Path],
    on_step: Callable[[int, int], None] | None = None,
    on_face: Callable[[str, list[tuple[str, str, float]]], None] | None = None,
    reference_files: Mapping[str, Path] = NO_FILES,
) -> GroupPicture:
    """The group picture `request.group` plans. `on_face(name, acting)`: told, during each face's redraw,
    whose adapters act (tests and logs watch it). Each face is redrawn from its own person's reference
    photos only (`request.references_of`), where the family takes them."""
    import faces as face_tools

    plan = request.group
    if plan is None:
        raise DoppelError("this is not a group picture")
    seed = request.seed if request.seed is not None else int(np.random.default_rng().integers(limits.SEED.high))
    steps = request.steps or generator.base.inference_steps
    uses = [Use(ref, adapter_files.get(ref.identity)) for ref in request.people]
    styles = [Use(ref, adapter_files.get(ref.identity)) for ref in request.styles]
    info = {"prompt": request.prompt, "base": generator.base.name, "steps": steps,
            "adapters": ", ".join(f"{a.name}:{a.weight:g}" for a in request.adapters)}
    # Read (and refused by a family without them) before anything is drawn.
    references = {a.name: generator.reference_images(request.references_of(a.name), reference_files)
                  for a in request.people}
    if request.references:
        info["references"] = ", ".join(f"{r.name}:{r.identity}" for r in request.references)

    composition = _composition(generator, request, plan, seed, steps, adapter_files, on_step)
    found = face_tools.find_faces(composition)
    people = tuple(a.name for a in request.people)
    if len(found) < len(people):
        outcome = GroupOutcome(people, tuple(PlacedFace(f.box) for f in found),
                               fewer_faces(len(found), len(people), "photo" if plan.photo else "composition"),
                               face_tools.SAME_PERSON)
        return GroupPicture(composition, seed, outcome, composition, info)

    identities = [None if i is None else np.asarray(i) for i in (plan.identities or [None] * len(people))]
    chosen = assign(found, identities, face_tools.distance)
    canvas = composition.copy()
    placed: dict[int, PlacedFace] = {}
    side = crop_side(generator)
    for person, (use, face_index) in enumerate(zip(uses, chosen, strict=True)):
        face = found[face_index]
        region = head_region(face.box, canvas.size)
        prompt = replace_tokens(request.prompt, plan.tokens, plan.stand_in, keep=plan.tokens[person])
        best: tuple[float, Image.Image, PlacedFace] | None = None
        for attempt in range(plan.retries + 1):
            face_seed = face_seed_for(seed, person, attempt)
            with generator.using([use, *styles]):  # the face in the picture's style, and only its own person
                _only(generator, use.ref, request.styles)
                if on_face is not None:
                    on_face(use.ref.name, acting(generator))
                drawn = redraw(inpainting_pipeline(generator), canvas, region, prompt, face_seed,
                               side=side, steps=steps, strength=plan.denoise, guidance=_guidance(generator, request),
                               max_sequence_length=generator.base.max_sequence_length,
                               references=generator.base.family.reference_arguments(references[use.ref.name],
                                                                                    inpainting=True))
            score = _score(face_tools, drawn, region, identities[person])
            known = identities[person] is not None
            passed = score <= face_tools.SAME_PERSON if known and score is not None else not known
            rank = -1.0 if passed and score is None else (score if score is not None else float("inf"))
            entry = PlacedFace(face.box, use.ref.name, score, passed, attempt + 1)
            if best is None or rank < best[0]:
                best = (rank, drawn, entry)
            if passed:
                break
        assert best is not None  # noqa: S101  (the first attempt always sets it)
        canvas = best[1]
        placed[face_index] = replace(best[2], tries=attempt + 1)
    faces_out = tuple(placed.get(k, PlacedFace(f.box)) for k, f in enumerate(found))
    outcome = GroupOutcome(people, faces_out, None, face_tools.SAME_PERSON)
    return GroupPicture(canvas, seed, outcome, composition, info)


def face_seed_for(seed: int, person: int, attempt: int) -> int:
    """Each face and each try its own seed, all from the picture's."""
    return (seed + 1 + person + 101 * attempt) % (limits.SEED.high + 1)


def redraw(inpaint: Any, canvas: Image.Image, region: Region, prompt: str, seed: int, *, side: int, steps: int,
           strength: float, guidance: float, max_sequence_length: int,
           references: Mapping[str, Any] = NO_FILES) -> Image.Image:
    """The canvas with the region's mask redrawn: the crop is drawn at `side` pixels, scaled back, and
    blended in through the soft mask, so every pixel where the mask is 0 is the canvas's own.
    `references`: the family's keyword arguments for the person's reference photos."""
    box = region.crop
    size = (box[2] - box[0], box[3] - box[1])
    crop = canvas.crop(box).resize((side, side), Image.Resampling.LANCZOS)
    mask = region.mask.crop(box).resize((side, side), Image.Resampling.BILINEAR)
    drawn = inpaint(
        prompt=prompt,
        image=crop,
        mask_image=mask,
        height=side,
        width=side,
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=torch.Generator("cpu").manual_seed(seed),
        max_sequence_length=max_sequence_length,
        **references,
    ).images[0]
    layer = canvas.copy()
    layer.paste(drawn.resize(size, Image.Resampling.LANCZOS), box[:2])
    return Image.composite(layer, canvas, region.mask)


def _guidance(generator: Generator, request: GenerateRequest) -> float:
    return generator.base.guidance if request.guidance is None else request.guidance


def _score(face_tools: Any, canvas: Image.Image, region: Region, identity: np.ndarray | None) -> float | None:
    """The redrawn face's distance to its person (None: no identity to compare with, or no face found)."""
    if identity is None:
        return None
    box = region.crop
    here = face_tools.find_faces(canvas.crop(box))
    if not here:
        return None
    middle = ((box[2] - box[0]) / 2, (box[3] - box[1]) / 2)
    nearest = min(here, key=lambda f: abs((f.box[0] + f.box[2]) / 2 - middle[0]) + abs((f.box[1] + f.box[3]) / 2 -
                                                                                        middle[1]))
    return round(float(face_tools.distance(nearest.descriptor, identity)), 3)


def _composition(generator: Generator, request: GenerateRequest, plan: GroupPlan, seed: int, steps: int,
                 adapter_files: Mapping[str, Path], on_step: Callable[[int, int], None] | None) -> Image.Image:
    photo = plan.photo_bytes()
    if photo is not None:
        return read_photo(photo)
    # The people faintly (their likeness comes with the faces), the styles at their strengths: the style is
    # the whole picture's.
    weak = tuple(replace(a, weight=a.weight * plan.composition_strength) for a in request.people)
    composing = replace(
        request,
        prompt=replace_tokens(request.prompt, plan.tokens, plan.stand_in),
        adapters=(weak if plan.composition_strength > 0 else ()) + request.styles,
        seed=seed,
        steps=steps,
        group=None,
        references=(),  # the composition has stand-ins, not people: faces get their photos when redrawn
    )
    return generator.generate(composing, adapter_files, on_step)[0].image


def read_photo(data: bytes) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError) as exc:
        raise DoppelError("the group photo could not be read as an image") from exc
    if max(image.size) > MAX_PHOTO_SIDE:
        image.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE), Image.Resampling.LANCZOS)
    return image


# ---- the command line --------------------------------------------------------------------


def group_request(base: str, prompt: str, people: Sequence[tuple[str, Path]], *, photo: Path | None = None,
                  seed: int | None = None, steps: int | None = None, weight: float = 1.0,
                  identities: Mapping[str, tuple[float, ...] | None] | None = None,
                  references: Sequence[ReferenceRef] = (), styles: Sequence[tuple[Path, float]] = (),
                  ) -> tuple[GenerateRequest, dict[str, Path]]:
    """The contract's group request for `TOKEN=adapter file` pairs, and its identity -> file map.
    `identities`: a face identity by token, for those whose faces are to be matched and scored;
    `references`: reference photos, each named by its person's token; `styles`: (style file, strength) pairs."""
    from contract import RequestError, adapter_identity
    from contract.models import adapter_facts
    from contract.subjects import PERSON, STYLE, subject_of

    for token, path in people:
        if not Path(path).is_file():
            raise DoppelError(f"there is no adapter file at '{path}' (for {token})")
        if subject_of(adapter_facts(Path(path))) != PERSON:
            raise DoppelError(f"'{path}' is a style, not {token}'s adapter: give it with --style, not --person")
    for path, _ in styles:
        if not Path(path).is_file():
            raise DoppelError(f"there is no style file at '{path}'")
        if subject_of(adapter_facts(Path(path))) != STYLE:
            raise DoppelError(f"'{path}' is a person's adapter, not a style: give it with --person TOKEN=FILE")
    if photo is not None and not photo.is_file():
        raise DoppelError(f"there is no photo at '{photo}'")
    refs = tuple(AdapterRef(token, adapter_identity(Path(path).read_bytes()), weight) for token, path in people)
    style_refs = tuple(AdapterRef(f"style-{k}-{Path(path).stem}", adapter_identity(Path(path).read_bytes()), strength,
                                  subject=STYLE) for k, (path, strength) in enumerate(styles))
    photo_text = GroupPlan.encode_photo(photo.read_bytes()) if photo is not None else None
    try:
        known = tuple((identities or {}).get(token) for token, _ in people)
        plan = GroupPlan(tokens=tuple(token for token, _ in people), photo=photo_text,
                         identities=known if any(i is not None for i in known) else ())
        request = GenerateRequest(base=base, prompt=prompt, adapters=refs + style_refs, seed=seed, steps=steps,
                                  group=plan, references=tuple(references))
    except RequestError as exc:
        raise DoppelError(str(exc)) from exc
    files = {ref.identity: Path(path) for ref, (_, path) in zip(refs, people, strict=True)}
    return request, files | {ref.identity: Path(path) for ref, (path, _) in zip(style_refs, styles, strict=True)}


def write_group(picture: GroupPicture, out: Path) -> tuple[Path, Path]:
    """The picture and a JSON of its faces' boxes, owners and scores, in `out`."""
    import json

    from contract.atomic import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    image = atomic_write(out / f"group-{picture.seed}.png", lambda tmp: tmp.write_bytes(picture.png()))
    facts = json.dumps(picture.outcome.to_data() | {"seed": picture.seed}, indent=2)
    return image, atomic_write(out / f"group-{picture.seed}.json", lambda tmp: tmp.write_text(facts + "\n"))


def parse_person(text: str, what: str = "ADAPTER_FILE") -> tuple[str, Path]:
    token, sep, path = text.partition("=")
    if not sep or not token or not path:
        raise DoppelError(f"give each person as TOKEN={what}, not '{text}'")
    return token, Path(path)


def identity_from_photos(folder: Path) -> tuple[float, ...] | None:
    """The face identity of a folder of someone's photos, as the photo checks work it out (None: too few faces)."""
    from faces.verdict import identity, look_at_file

    if not folder.is_dir():
        raise DoppelError(f"there is no folder of photos at '{folder}'")
    pictures = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    found = identity([look_at_file(p.read_bytes()) for p in pictures])
    return None if found is None else tuple(float(x) for x in found)
