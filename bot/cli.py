"""The command line of `python -m bot`: its commands and options, and their help."""

from __future__ import annotations

import argparse
from pathlib import Path

PLAYGROUND_PORT = 8765


def parse(argv: list[str]) -> argparse.Namespace:
    return _parser().parse_args(argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="doppel's Discord bot. Without a command it connects to Discord with DISCORD_TOKEN "
        "(from .env or the environment; see .env.example).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "healthcheck", help="exit 0 when the running bot has proved it is alive lately (the container's check)"
    )
    play = commands.add_parser(
        "playground",
        help="try doppel in a browser: a local Discord, the real bot and a web page; no token, no network, no GPU",
        description="Start a local stand-in for Discord, the real bot connected to it, and a web page to act in "
        "it as a few members. Settings come from .env and the environment, except the token, the server and "
        "Ray, which are the playground's own.",
    )
    play.add_argument(
        "--port", type=int, default=PLAYGROUND_PORT,
        help="the page's port, 0 for any free one (default: %(default)s)",
    )
    play.add_argument(
        "--host", default="127.0.0.1",
        help="the address the page listens on (default: %(default)s, this machine only); another, such as 0.0.0.0 "
        "in a container, lets anyone who can reach it act in the playground as any of its members",
    )
    play.add_argument(
        "--base", default="tiny",
        help="the base model: 'tiny' (the default: random, offline, its pictures are noise), a Hub id or a diffusers "
        "folder",
    )
    play.add_argument(
        "--gpus", type=float, default=1,
        help="GPUs the playground's local Ray declares; without a real GPU, GPU work runs on the CPU "
        "(default: %(default)g)",
    )
    play.add_argument(
        "--data-dir", type=Path, default=None,
        help="keep photos, adapters and the database in this folder (default: a temporary one, deleted at the end)",
    )
    play.add_argument(  # for tests: two heartbeats in seconds, not minutes
        "--heartbeat-ms", type=int, default=None, help=argparse.SUPPRESS,
    )
    return parser
