"""`python -m trainer`: build the tiny model, train an adapter, make pictures.

Bad input ends with one line, `error: ...`, and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
PICTURE_BASE_HELP = "Hub id, diffusers folder, 'tiny' or 'tiny-klein' (default: GENERATION_MODEL, else BASE_MODEL)"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from contract.library_warnings import quiet_library_warnings

    quiet_library_warnings()  # before torch and its kin are imported
    from contract.atomic import FolderNotOurs
    from trainer.errors import DoppelError

    try:
        return args.run(args)
    except (DoppelError, FolderNotOurs) as exc:
        print(f"error: {exc}{_hub_hint(exc, args)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"\ninterrupted{_resume_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _resume_hint(args) -> str:
    """After an interrupted `train`: how to go on from its newest checkpoint, if it wrote one."""
    if getattr(args, "run", None) is not _train:
        return ""
    from contract.layout import RunLayout

    newest = max(RunLayout(args.out).checkpoints.glob("step-*.ckpt"), default=None)
    return f"; --resume {newest} goes on from there" if newest else " before the first checkpoint"


def _parser() -> argparse.ArgumentParser:
    from contract import TrainRequest, limits
    from contract.lora_formats import EXPORT_FORMATS
    from contract.models import FAMILY_TITLES
    from contract.requests import MEMORY_MODES
    from contract.subjects import DEFAULTS, PERSON, STYLE
    from trainer.cli_adapters import AdapterArg
    from trainer.training.config import LR_SCHEDULES, TrainConfig

    defaults = TrainRequest.__dataclass_fields__ | TrainConfig.__dataclass_fields__  # the request's, the trainer's
    parser = argparse.ArgumentParser(prog="python -m trainer", description="doppel's Flux LoRA trainer")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    tiny = commands.add_parser("make-tiny", help="write a tiny random pipeline (images from it are noise)")
    tiny.add_argument(
        "directory",
        type=Path,
        nargs="?",
        default=None,
        help="a new or empty folder, or an earlier tiny build to replace "
        "(default: MODEL_CACHE_DIR's, where --base tiny or tiny-klein looks)",
    )
    tiny.add_argument("--family", choices=tuple(FAMILY_TITLES), default="flux1", help="(default: %(default)s)")
    tiny.add_argument("--distilled", action="store_true", help="flux2-klein: the step-distilled variant")
    tiny.set_defaults(run=_make_tiny)

    train = commands.add_parser("train", help="train a LoRA adapter from a folder of photos (or a style's pictures)")
    train.add_argument(
        "--base", default=None, help="Hub id, diffusers folder, 'tiny' or 'tiny-klein' (default: BASE_MODEL)"
    )
    train.add_argument("--images", type=Path, required=True, help="folder of images with same-named .txt captions")
    train.add_argument("--token", required=True, help="the trigger token, letters and digits, e.g. THGH96")
    train.add_argument("--out", type=Path, required=True, help="folder for the adapter, checkpoints and samples")
    train.add_argument(
        "--style",
        action="store_true",
        help="train a style from design pictures (logos, illustrations, product shots): no face checks, captions "
        "of their content, the style's defaults",
    )
    steps, person, style = limits.STEPS, DEFAULTS[PERSON], DEFAULTS[STYLE]
    train.add_argument(
        "--steps",
        type=int,
        default=None,
        help=f"{steps.low} to {steps.high} (default: {person.steps}; --style: {style.steps})",
    )
    train.add_argument("--rank", type=int, default=None, help=f"(default: {person.rank}; --style: {style.rank})")
    train.add_argument("--lr", type=float, default=None, help=f"(default: {person.lr:g}; --style: {style.lr:g})")
    resolution = limits.RESOLUTION
    train.add_argument(
        "--resolution",
        type=int,
        default=None,
        help=f"a multiple of {resolution.multiple_of} from {resolution.low} to {resolution.high} "
        "(default: the base model's, 512; tiny: 64)",
    )
    train.add_argument("--seed", type=int, default=defaults["seed"].default, help="(default: %(default)s)")
    train.add_argument("--resume", type=Path, default=None, help="a checkpoint of this run to continue from")
    train.add_argument(
        "--start-from",
        type=Path,
        default=None,
        help="an earlier adapter (a checkpoint, or its .safetensors) to build on; --steps are added to its steps",
    )
    train.add_argument(
        "--captions",
        action="store_true",
        help="first write a caption file for each photo without one, with CAPTION_MODEL (Florence-2; 'tiny' offline)",
    )
    train.add_argument(
        "--keep-all",
        action="store_true",
        help="train on every photo, those without a face or with someone else's too (default: they are left out; "
        "a --style looks for no faces)",
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=defaults["checkpoint_every"].default,
        help="steps between checkpoints (default: a quarter of --steps)",
    )
    train.add_argument(
        "--sample-every",
        type=int,
        default=defaults["sample_every"].default,
        help="steps between samples, 0: none (default: a quarter of --steps)",
    )
    train.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default=defaults["lr_schedule"].default, help="(default: %(default)s)"
    )
    train.add_argument(
        "--warmup-steps", type=int, default=defaults["warmup_steps"].default, help="(default: %(default)s)"
    )
    train.add_argument(
        "--memory-mode",
        choices=MEMORY_MODES,
        default=None,
        help="the frozen base: auto plans from the GPU's memory and the resolution (default: MEMORY_MODE, auto)",
    )
    train.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute activations in the backward pass to save memory (default: as the memory plan says)",
    )
    train.set_defaults(run=_train)

    generate = commands.add_parser("generate", help="make pictures with one or more adapters")
    generate.add_argument("--base", default=None, help=PICTURE_BASE_HELP)
    generate.add_argument("--lora", type=AdapterArg.parse, action="append", default=[], metavar="LORA[:WEIGHT]",
                          help="an adapter file (a person's or a style, as its header says), with its strength after "
                          "a colon (default 1); repeat for more")
    generate.add_argument("--weight", type=float, action="append", default=[],
                          help="strength of each --lora, in order (instead of :WEIGHT)")
    generate.add_argument("--prompt", required=True, help="what to draw; name the person by their adapter's token")
    generate.add_argument("--reference", type=Path, action="append", default=[], metavar="FILE_OR_DIR",
                          help=f"a photo of the person (or a folder of them) to draw them from; up to "
                          f"{limits.REFERENCES_PER_PICTURE}, on a FLUX.2 [klein] base")
    generate.add_argument("--seed", type=int, default=None, help="picture k gets seed + k (default: a random seed)")
    generate.add_argument("--count", type=int, default=1, help=f"{limits.IMAGE_COUNT.low} to {limits.IMAGE_COUNT.high}")
    generate.add_argument("--steps", type=int, default=None, help="inference steps (default: the base model's)")
    generate.add_argument("--size", choices=tuple(limits.SIZES), default="square", help="the picture's shape")
    generate.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    generate.set_defaults(run=_generate)

    compare = commands.add_parser("compare", help="the base model and an adapter side by side, same prompt and seed "
                                  "(with a style: without and with it)")
    compare.add_argument("--base", default=None, help=PICTURE_BASE_HELP)
    compare.add_argument("--lora", type=AdapterArg.parse, action="append", required=True, metavar="LORA[:WEIGHT]",
                         help="an adapter file; repeat for a person's and a style, whose half without the style is "
                         "the other")
    compare.add_argument("--prompt", required=True, help="what to draw; name the person by their adapter's token")
    compare.add_argument("--seed", type=int, default=0, help="the seed of both halves")
    compare.add_argument("--steps", type=int, default=None, help="inference steps (default: the base model's)")
    compare.add_argument("--out", type=Path, required=True, help="the PNG to write")
    compare.set_defaults(run=_compare)

    group = commands.add_parser("group", help="several people in one picture, each face drawn with only its adapter")
    group.add_argument("--base", default=None, help=PICTURE_BASE_HELP)
    group.add_argument("--person", action="append", default=[], metavar="TOKEN=LORA",
                       help="a person's token in the prompt and their adapter file; two or more, in prompt order")
    group.add_argument("--style", type=AdapterArg.parse, action="append", default=[], metavar="LORA[:WEIGHT]",
                       help="a style file and its strength: the whole picture and every face are drawn in it")
    group.add_argument("--prompt", required=True)
    group.add_argument("--image", type=Path, default=None, help="a photo whose faces are the composition")
    group.add_argument("--photos", action="append", default=[], metavar="TOKEN=DIR",
                       help="a folder of that person's photos: their faces are matched and scored against it")
    group.add_argument("--reference", action="append", default=[], metavar="TOKEN=DIR",
                       help="a folder (or one file) of that person's photos their face is redrawn from, on a FLUX.2 "
                       f"[klein] base (up to {limits.REFERENCES_PER_PICTURE})")
    group.add_argument("--seed", type=int, default=None)
    group.add_argument("--steps", type=int, default=None)
    group.add_argument("--out", type=Path, required=True, help="folder for the PNG and its JSON of faces")
    group.set_defaults(run=_group)

    export = commands.add_parser("export", help="an adapter in the key format ComfyUI and kohya load, or diffusers'")
    export.add_argument("--lora", type=Path, required=True, help="the adapter file")
    export.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                        help="comfyui: kohya's lora_unet_ keys (ComfyUI, kohya, diffusers load them); diffusers")
    export.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    export.set_defaults(run=_export)

    dataset = commands.add_parser("dataset", help="look at a folder of photos before training from it")
    check = dataset.add_subparsers(required=True, metavar="ACTION").add_parser(
        "check", help="a verdict per photo (faces, same person, blur, duplicate) and a summary; exit 1 if too few "
        "are usable", formatter_class=_DefaultsHelp,
    )
    check.add_argument("--images", type=Path, required=True, help="the folder of photos")
    check.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    check.add_argument("--min-photos", type=int, default=limits.MIN_PHOTOS_TO_TRAIN,
                       help="usable photos a likeness needs")
    check.set_defaults(run=_dataset_check)
    for command in commands.choices.values():
        command.formatter_class = _DefaultsHelp
    return parser


class _DefaultsHelp(argparse.HelpFormatter):
    """Each option's default after its help, unless the help speaks of it already or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == [] or not action.option_strings
        if nothing or "default" in text or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)".lstrip()


def _hub_hint(exc: Exception, args) -> str:
    """What to do when a base model from the Hub could not be had: most often FLUX.1-dev, gated, not yet cached."""
    from contract.models import TINY_FOLDERS
    from trainer.errors import BaseModelError

    if not isinstance(exc, BaseModelError) or not hasattr(args, "base"):
        return ""
    name = args.base or (_base(args) if args.run is _train else _picture_base(args))
    if name in TINY_FOLDERS or Path(name).expanduser().exists():
        return ""
    return (
        f"; '{name}' is downloaded from the Hugging Face Hub on first use; a gated model such as FLUX.1-dev needs its "
        "licence accepted on the Hub and HF_TOKEN set (in .env). To try doppel offline, use --base tiny "
        "(its pictures are noise)"
    )


def _base(args) -> str:
    from contract.settings import WorkSettings

    return args.base or WorkSettings().base_model


def _picture_base(args) -> str:
    from contract.settings import WorkSettings

    return args.base or WorkSettings().picture_model


def _dataset_check(args) -> int:
    from trainer.training.dataset_check import check_folder

    report = check_folder(args.images, args.min_photos)
    print(report.to_json() if args.json else "\n".join(report.lines()))
    return 0 if report.enough else 1


def _export(args) -> int:
    from contract.atomic import atomic_write_bytes
    from contract.lora_formats import LoraFormatError, export
    from contract.models import adapter_facts
    from trainer.errors import ConfigError

    if not args.lora.is_file():
        raise ConfigError(f"no adapter file at {args.lora}")
    if args.out.resolve() == args.lora.resolve():
        raise ConfigError("--out must be another file than --lora")
    try:
        data = export(args.lora.read_bytes(), args.format)
    except LoraFormatError as exc:
        raise ConfigError(str(exc)) from None
    atomic_write_bytes(args.out, data, mode=0o644)
    facts = adapter_facts(args.out)
    print(f"wrote {args.out} ({args.format}; trigger token {facts.get('token', 'unknown')}, "
          f"base {facts.get('base_model', 'unknown')})")
    return 0


def _make_tiny(args) -> int:
    from tqdm import tqdm

    from contract.atomic import check_replaceable
    from contract.models import TINY_FOLDERS
    from trainer.models.families import FAMILIES
    from trainer.models.tiny_build import NOISE_WARNING, TINY_MARKER
    from trainer.settings import trainer_settings

    family = FAMILIES[args.family]
    name = family.tiny_name(args.distilled)
    cached = trainer_settings().model_cache_dir / TINY_FOLDERS[name]
    directory = args.directory or cached
    check_replaceable(directory, TINY_MARKER)  # before any work: a folder of photos is never replaced
    with tqdm(total=2, unit="stage", dynamic_ncols=True) as bar:
        progress = lambda stage: (bar.set_description(stage), bar.update(1))  # noqa: E731
        family.write_tiny(name, directory, on_stage=progress)
    print(f"wrote the tiny {family.tiny_title(name)} pipeline to {directory} ({NOISE_WARNING})")
    if directory.resolve() == cached.resolve():
        print(f"--base {name} uses it")
    else:
        print(f"use it with --base {directory} (--base {name} uses the one in {cached}, built when first needed)")
    return 0


def _train(args) -> int:
    _refuse_early(args)
    from tqdm import tqdm

    from contract import CaptionsWritten
    from contract.settings import WorkSettings
    from contract.subjects import DEFAULTS, PERSON, STYLE
    from trainer.training.config import TrainConfig
    from trainer.training.progress import CheckpointEvent, Phase, SampleEvent, Step

    work = WorkSettings()  # this machine asks for the work, as the bot does: BASE_MODEL, MEMORY_MODE, CAPTION_MODEL
    subject = STYLE if args.style else PERSON
    defaults = DEFAULTS[subject]  # where the options say nothing: the subject's (contract/subjects.py)
    config = TrainConfig.from_options(
        base=_base(args),
        images=args.images,
        token=args.token,
        out=args.out,
        subject=subject,
        steps=defaults.steps if args.steps is None else args.steps,
        rank=defaults.rank if args.rank is None else args.rank,
        lr=defaults.lr if args.lr is None else args.lr,
        resolution=args.resolution,
        seed=args.seed,
        resume=args.resume,
        start_from=args.start_from,
        checkpoint_every=args.checkpoint_every,
        sample_every=args.sample_every,
        caption_model=work.caption_model if args.captions else "",
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        gradient_checkpointing=args.gradient_checkpointing,
        memory_mode=args.memory_mode or work.memory_mode,
        leave_out_doubtful=not args.keep_all,
    )
    _check_token(config)
    from trainer.training.train import train_lora  # torch: only once the options are known to be good

    bar = None

    def show(event) -> None:
        nonlocal bar
        if isinstance(event, Phase):
            tqdm.write(f"{event.name}: {event.detail}" if event.detail else str(event.name), file=sys.stderr)
        elif isinstance(event, Step):
            if bar is None:
                bar = tqdm(total=event.total, initial=event.step - 1, unit="step", dynamic_ncols=True)
            bar.update(1)
            bar.set_postfix(loss=f"{event.loss:.4f}")
        elif isinstance(event, CheckpointEvent):
            tqdm.write(f"checkpoint: {event.path}", file=sys.stderr)
        elif isinstance(event, SampleEvent):
            tqdm.write(f"samples at step {event.step}: {', '.join(str(p) for p in event.paths)}", file=sys.stderr)
        elif isinstance(event, CaptionsWritten):
            for name, caption in event.captions.items():
                tqdm.write(f"caption written for {name}: {caption}", file=sys.stderr)

    try:
        result = train_lora(config, on_event=show)
    finally:
        if bar is not None:
            bar.close()
    print(
        f"adapter: {result.lora_path} "
        f"({result.steps} steps, final loss {result.final_loss:.4f}, {result.seconds:.1f} s)"
    )
    if result.timeline:
        print(f"timeline: {result.timeline}")
    if result.recommended is not None:
        why = ("the lowest loss on the pictures held out of training" if args.style
               else "most like the photos' face while drawing every prompt")
        print(f"recommended: step {result.recommended} ({why})")
    from contract.models import TINY_FOLDERS

    if config.request.base in TINY_FOLDERS:
        print("note: trained on a tiny random model, so its pictures are noise")
    return 0


def _refuse_early(args) -> None:
    """What can be refused in a moment, before torch loads: a photo folder that is not there, and an --out that
    holds an earlier run's checkpoints (a new run there would mix its own with them)."""
    from contract.layout import RunLayout
    from trainer.errors import ConfigError

    if not args.images.is_dir():
        what = "is a file, not a folder of photos" if args.images.exists() else "does not exist"
        raise ConfigError(f"the image folder '{args.images}' {what}")
    if args.resume is None:
        earlier = sorted(RunLayout(args.out).checkpoints.glob("step-*.ckpt"))
        if earlier:
            raise ConfigError(
                f"'{args.out}' holds an earlier run's checkpoints: --resume {earlier[-1]} goes on with that run, "
                "another --out starts a new one"
            )


def _check_token(config) -> None:
    """The rule the bot's made-up tokens follow (contract/tokens.py), applied to the one given."""
    from contract.tokens import TokenChecker
    from trainer.errors import ConfigError
    from trainer.models.base_model import resolve_base
    from trainer.settings import trainer_settings

    settings = trainer_settings()
    base = resolve_base(config.request.base, settings)
    checker = TokenChecker.for_base(  # tokenizers out of reach: loading the model will say why
        base.location, settings.model_cache_dir, settings.hub_token, warn=False, folders=base.family.tokenizer_folders
    )
    problem = checker.problem(config.request.token)
    if problem:
        raise ConfigError(problem)


def _generate(args) -> int:
    from tqdm import tqdm

    from trainer.cli_adapters import adapter_refs
    from trainer.generation.generator import Generator
    from trainer.images import save_png

    names = [f"lora{k}-{a.path.parent.name}" for k, a in enumerate(args.lora)]
    references, reference_files = reference_photos("reference", args.reference)
    refuse_references(_picture_base(args), len(references))
    request, files = _picture_request(args, adapter_refs(args.lora, args.weight, names), count=args.count,
                                      size=args.size, references=references)
    generator = Generator(request.base)
    with tqdm(total=request.steps or generator.base.inference_steps, unit="step", dynamic_ncols=True) as bar:
        images = generator.generate(request, files, on_step=lambda done, total: bar.update(done - bar.n),
                                    reference_files=reference_files)
    for picture in images:
        path = save_png(picture.image, args.out / f"seed-{picture.seed}.png", picture.info)
        print(path)
    if generator.base.is_tiny:
        print("note: the tiny random model makes noise, not likenesses")
    return 0


def reference_photos(name: str, paths: list[Path]):
    """`name`'s reference photos from files and folders (a folder's photos in name order), and identity -> file."""
    from contract import ReferenceRef, reference_identity
    from trainer.errors import DoppelError

    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            raise DoppelError(f"there is no photo or folder of photos at '{path}'")
    if paths and not found:
        raise DoppelError(f"there are no photos in {', '.join(map(str, paths))}")
    files = {reference_identity(p.read_bytes()): p for p in found}
    return tuple(ReferenceRef(name, identity) for identity in files), files


def refuse_references(base: str, count: int) -> None:
    """Reference photos on a family without them: said before any model is loaded."""
    from trainer.errors import DoppelError
    from trainer.models.base_model import resolve_base

    problem = resolve_base(base).family.reference_problem(count) if count else None
    if problem is not None:
        raise DoppelError(problem)


def _picture_request(args, adapters: list, **fields):
    """The contract's request for these (adapter, file) pairs, and its identity -> file map; bad input as
    DoppelError."""
    from contract import GenerateRequest, RequestError
    from trainer.errors import DoppelError

    refs = [ref for ref, _ in adapters]
    paths = [path for _, path in adapters]
    try:
        request = GenerateRequest(
            base=_picture_base(args), prompt=args.prompt, adapters=tuple(refs), seed=args.seed, steps=args.steps,
            **fields,
        )
    except RequestError as exc:
        raise DoppelError(str(exc)) from exc
    return request, {ref.identity: path for ref, path in zip(refs, paths, strict=True)}


def _compare(args) -> int:
    from tqdm import tqdm

    from trainer.cli_adapters import adapter_refs
    from trainer.generation.compare import compare_pictures
    from trainer.generation.generator import Generator
    from trainer.images import save_png

    names = [f"lora{k}-{a.path.parent.name}" for k, a in enumerate(args.lora)]
    request, files = _picture_request(args, adapter_refs(args.lora, [], names), compare=True)
    generator = Generator(request.base)
    with tqdm(total=2 * (request.steps or generator.base.inference_steps), unit="step", dynamic_ncols=True) as bar:
        picture = compare_pictures(generator, request, files, on_step=lambda done, total: bar.update(done - bar.n))
    print(save_png(picture.image, args.out, picture.info))
    return 0


def _group(args) -> int:
    from trainer.errors import DoppelError
    from trainer.generation.generator import Generator
    from trainer.generation.group import (
        draw_group,
        group_request,
        identity_from_photos,
        parse_person,
        write_group,
    )

    people = [parse_person(text) for text in args.person]
    folders = [parse_person(text, "PHOTO_FOLDER") for text in args.photos]
    identities = {token: identity_from_photos(folder) for token, folder in folders}
    tokens = {token for token, _ in people}
    references: list = []
    reference_files: dict = {}
    for token, folder in (parse_person(text, "PHOTO_FOLDER") for text in args.reference):
        if token not in tokens:
            raise DoppelError(f"--reference names {token}, who is not one of the --person tokens")
        refs, found = reference_photos(token, [folder])
        references += refs
        reference_files |= found
    refuse_references(_picture_base(args), max((len([r for r in references if r.name == t]) for t in tokens),
                                               default=0))
    request, files = group_request(_picture_base(args), args.prompt, people, photo=args.image, seed=args.seed,
                                   steps=args.steps, identities=identities, references=references,
                                   styles=[(a.path, 1.0 if a.weight is None else a.weight) for a in args.style])
    picture = draw_group(Generator(request.base), request, files, reference_files=reference_files)
    image, facts = write_group(picture, args.out)
    print(image)
    print(facts)
    outcome = picture.outcome
    if outcome.fallback:
        print(f"note: {outcome.fallback}, so nobody was redrawn", file=sys.stderr)
    for face in outcome.faces:
        print(f"{face.owner or '(kept)'} at {face.box}: {face.verdict()}")
    return 0
