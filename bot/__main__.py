"""`python -m bot` runs the bot; `python -m bot healthcheck` is the container's health check; `python -m bot
playground` tries it in a browser (the top-level package playground, also `python -m playground`). The command
line is in bot/cli.py."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from bot import cli, exit_codes, health
from bot.settings import BotSettings
from contract.library_warnings import quiet_library_warnings


def main(argv: list[str]) -> int:
    quiet_library_warnings()  # PyNaCl's, and the GPU libraries' of a local Ray's workers
    args = cli.parse(argv)
    try:
        settings = BotSettings()
    except ValidationError as bad:
        # One line a setting, by its variable's name; not its value, which could be a secret.
        for error in bad.errors():
            name = "_".join(str(part) for part in error["loc"]).upper()
            print(f"error: the setting {name} is not accepted: {error['msg']} (see .env.example).", file=sys.stderr)
        return exit_codes.BAD_CONFIGURATION
    if args.command == "playground":
        from playground import run

        return run.main(
            args.port, args.base, args.gpus, args.data_dir, settings.log_level, args.heartbeat_ms, args.host
        )
    if args.command == "healthcheck":
        return health.check(settings)
    if settings.discord_token is None:
        print(
            "error: DISCORD_TOKEN is not set. Create a bot at https://discord.com/developers/applications, "
            "then put its token in .env (see .env.example).",
            file=sys.stderr,
        )
        return exit_codes.BAD_CONFIGURATION
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot import serve

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return serve.run(settings)  # until SIGTERM or SIGINT: a graceful stop (bot/serve.py)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
