"""Captions for the photos that have none, written by Florence-2 on the GPU worker.

A caption says what a picture shows that the member may want to change later (the place, the
clothes, the pose, what they hold), in the form `photo of TOKEN, <that>`. What the person looks
like is left out on purpose: whatever a caption does not name, training ties to the token, and the
member's face, hair and build are exactly what the token must learn. So the model is asked for its
short `<CAPTION>` (one sentence that names the scene; the detailed ones spend themselves on hair and
faces), the sentence's subject ("a young woman with long hair") is dropped, since the token is the
subject, and words about looks left elsewhere are removed.

The model is transformers' own Florence2ForConditionalGeneration, loaded from a Hub id, a local
folder, or `tiny` (a random one built offline by `trainer.models.tiny_captioner`, for tests).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from contract import CaptionsWritten, Phase, PhaseName
from contract.subjects import PERSON, STYLE
from trainer.models import tiny_captioner
from trainer.settings import TrainerSettings, trainer_settings
from trainer.training.dataset import caption_with_token, decode_image, image_files

log = logging.getLogger(__name__)

TASK = "<CAPTION>"
MAX_NEW_TOKENS = 40
BATCH = 8
CAPTION_SIDE = 1024
MAX_DESCRIPTION = 200  # characters: a caption is one line the member can read and edit

_PERSON = r"(?:man|woman|person|boy|girl|lady|guy|gentleman|child|kid|teenager|people)"
_LOOKS_WORDS = (
    r"young|old|elderly|middle[- ]aged|older|younger|adult|teenage|handsome|beautiful|pretty|attractive|cute|"
    r"blonde?|brunette|redheaded|red-haired|dark-haired|bald|balding|bearded|mustached|freckled|tall|short|"
    r"slim|thin|fat|overweight|skinny|muscular|white|black|asian|african|caucasian|hispanic|latino|latina|"
    r"indian|smiling|happy"
)
# The sentence's subject: "a young woman", "the man with long brown hair", "two people".
SUBJECT = re.compile(
    rf"^\s*(?:an?|the|one|two|three)?\s*(?:(?:{_LOOKS_WORDS})\s+)*{_PERSON}\b"
    r"(?:\s+with\s+(?:(?:long|short|curly|straight|wavy|dark|light|blonde?|brown|black|red|grey|gray|white)\s+)*"
    r"(?:hair|beard|mustache|moustache)\b(?:\s+and\s+[a-z]+\s+(?:eyes|beard))?)?",
    re.IGNORECASE,
)
# Looks said anywhere else: hair, eyes, skin, build, age.
LOOKS = re.compile(
    r"\b(?:with\s+)?(?:(?:long|short|curly|straight|wavy|dark|light|blonde?|brown|black|red|grey|gray|white|"
    r"blue|green|hazel)\s+)+(?:hair|eyes|skin|beard)\b"
    r"|\b(?:with\s+)?(?:a\s+)?(?:beard|mustache|moustache|freckles|wrinkles)\b"
    r"|\b\d+[- ]year[- ]old\b",
    re.IGNORECASE,
)
PRINTABLE = re.compile(r"[^\w\s,.'\-!?():;&/]")
# How a picture is drawn, which a style's token must learn and its captions must not say.
_MEDIUM = (
    r"illustration|drawing|painting|sketch|cartoon|rendering|render|artwork|art|graphic|design|vector|clip ?art|"
    r"watercolou?r|poster art|digital art|3d render"
)
_MANNER = r"flat|vector|minimalist|minimal|simple|stylized|stylised|cartoon|digital|colorful|colourful|abstract|retro"
STYLE_WORDS = re.compile(
    rf"^\s*(?:an?|the)?\s*(?:(?:{_MANNER})\s+)*(?:{_MEDIUM})\s+(?:of|showing|with|depicting)\s+"  # "An illustration of"
    rf"|\bin\s+(?:an?\s+)?(?:(?:{_MANNER})\s+)*(?:{_MEDIUM}|style)\b(?:\s+style)?",  # "in a flat style"
    re.IGNORECASE,
)


def describe_scene(text: str) -> str:
    """A caption model's sentence about a photo, without the person's looks and without its subject."""
    text = PRINTABLE.sub("", text).replace("\n", " ")
    text = re.sub(r"\s{2,}", " ", LOOKS.sub("", text))
    text = SUBJECT.sub("", text, count=1)
    text = re.sub(r"\s+([,.])", r"\1", re.sub(r"\s{2,}", " ", text)).strip(" ,.;:-")
    text = re.sub(r"^(?:is|are)\s+", "", text)  # "A man is standing" loses "A man": not "is standing"
    return text[:MAX_DESCRIPTION].strip()


def describe_content(text: str) -> str:
    """A caption model's sentence about a design picture, its content whole, without words for how it is drawn."""
    text = PRINTABLE.sub("", text).replace("\n", " ")
    text = STYLE_WORDS.sub(" ", text)
    text = re.sub(r"\s+([,.])", r"\1", re.sub(r"\s{2,}", " ", text)).strip(" ,.;:-")
    return text[:MAX_DESCRIPTION].strip()


def caption_for(description: str, token: str, subject: str = PERSON) -> str:
    """doppel's caption of a picture: a person's token first, then the scene; a style's after the content."""
    if subject == STYLE:
        return caption_with_token(description, token, STYLE)
    return f"photo of {token}, {description}" if description else f"photo of {token}"


def resolve_captioner(name: str, settings: TrainerSettings | None = None) -> str:
    """What `from_pretrained` is given: a Hub id or a folder; `tiny` is built in the model cache first."""
    if name != "tiny":
        return name
    folder = (settings or trainer_settings()).model_cache_dir / "tiny-florence2"
    if not tiny_captioner.is_tiny_captioner(folder):
        log.info("building the tiny random Florence-2 in %s", folder)
        tiny_captioner.write_captioner(folder)
    return str(folder)


class Captioner:
    """A Florence-2 model and its processor, on one device. Load it, caption, then drop it: it is not kept."""

    def __init__(self, location: str, device: str | None = None):
        import torch
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.processor = AutoProcessor.from_pretrained(location)
        model = Florence2ForConditionalGeneration.from_pretrained(location, dtype=self.dtype)
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers types .to loosely
        # A random (tiny) model says end-of-text at once: make it say something, so the plumbing is seen working.
        self.min_new_tokens = 8 if tiny_captioner.is_tiny_captioner(Path(location)) else 0

    def describe(self, images: list[Image.Image], subject: str = PERSON) -> list[str]:
        """One description per image, in order: a person's scene (looks removed), or a style's content."""
        clean = describe_content if subject == STYLE else describe_scene
        import torch

        described: list[str] = []
        for start in range(0, len(images), BATCH):
            batch = images[start : start + BATCH]
            inputs = self.processor(text=[TASK] * len(batch), images=batch, return_tensors="pt")
            inputs = {k: v.to(self.device, self.dtype) if v.is_floating_point() else v.to(self.device)
                      for k, v in inputs.items()}
            with torch.inference_mode():
                generated = self.model.generate(
                    **inputs, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=self.min_new_tokens,
                    num_beams=1, do_sample=False,
                )
            for text in self.processor.batch_decode(generated, skip_special_tokens=True):
                described.append(clean(text))
        return described


def uncaptioned(folder: Path) -> list[Path]:
    """The images of a training folder whose caption file is missing or empty."""
    found = []
    for path in image_files(folder):
        caption = path.with_suffix(".txt")
        if not caption.is_file() or not caption.read_text(encoding="utf-8", errors="replace").strip():
            found.append(path)
    return found


def caption_missing_photos(
    folder: Path, token: str, model: str, emit: Callable[[Phase | CaptionsWritten], None], subject: str = PERSON
) -> dict[str, str]:
    """A run's first work: captions for its photos that have none, said to whoever follows the run."""
    if not model:
        return {}
    missing = uncaptioned(Path(folder))
    if not missing:
        return {}
    emit(Phase(PhaseName.CAPTIONING, f"{len(missing)} photo{'s' if len(missing) != 1 else ''} without a caption"))
    try:
        written = write_missing_captions(folder, token, model, subject)
    except Exception as exc:  # captions help a run; their model failing (offline, out of memory) must not end it
        log.warning("no captions written with %s (%s: %s); the pictures train as '%s'",
                    model, type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "",
                    caption_with_token("", token, subject))
        return {}
    if written:
        emit(CaptionsWritten(written))
    return written


def write_missing_captions(folder: Path, token: str, model: str, subject: str = PERSON) -> dict[str, str]:
    """Write `photo of TOKEN, ...` (a style's: `..., in the style of TOKEN`) beside each image of `folder` that
    has no caption; {image name: caption}.

    Nothing is loaded when every photo has a caption (the member's own always win). Images that do not
    decode are left to the training set's check, which names them.
    """
    missing = []
    for path in uncaptioned(Path(folder)):
        try:
            image = decode_image(path.read_bytes())
        except ValueError:
            continue
        image.thumbnail((CAPTION_SIDE, CAPTION_SIDE))  # the model sees 768 px: a phone photo need not stay whole
        missing.append((path, image))
    if not missing or not model:
        return {}
    captioner = Captioner(resolve_captioner(model))
    try:
        descriptions = captioner.describe([image for _, image in missing], subject)
    finally:
        del captioner
        _free_memory()
    written = {}
    for (path, _), description in zip(missing, descriptions, strict=True):
        caption = caption_for(description, token, subject)
        path.with_suffix(".txt").write_text(caption, encoding="utf-8")
        written[path.name] = caption
    return written


def _free_memory() -> None:
    from trainer.models.memory import free_memory

    free_memory()
