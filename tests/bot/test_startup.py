import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot import exit_codes, health
from bot.settings import BotSettings
from fake_discord.fixtures import fake_discord  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
SITE = Path(__file__).parent / "faults_site"  # points discord.py at the stand-in (test_faults_process.py)


def _python(code: str, env_extra: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"} | (env_extra or {})
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


def test_the_bot_never_imports_torch_and_the_trainer_never_imports_discord():
    bot_side = _python(["-c", "import sys, bot.app, bot.__main__; print('torch' in sys.modules)"])
    assert bot_side.stdout.strip() == "False", bot_side.stderr
    trainer_side = _python(
        [
            "-c",
            "import sys, trainer.training.train, trainer.generation.generator, trainer.cli;"
            " print('discord' in sys.modules)",
        ]
    )
    assert trainer_side.stdout.strip() == "False", trainer_side.stderr


def test_without_a_token_the_bot_says_what_to_do(tmp_path):
    result = _python(["-m", "bot"], cwd=tmp_path, env_extra={"PYTHONPATH": str(Path.cwd())})
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr and ".env" in result.stderr


def test_a_setting_that_is_not_accepted_is_named_in_a_line_and_exits_2(tmp_path):
    result = _python(["-m", "bot"], cwd=tmp_path, env_extra={"PYTHONPATH": str(Path.cwd()), "STOP_GRACE_S": "soon"})
    assert result.returncode == exit_codes.BAD_CONFIGURATION
    assert result.stderr.startswith("error: the setting STOP_GRACE_S is not accepted: Input should be a valid number")
    assert len(result.stderr.splitlines()) == 1


def test_the_token_never_shows_in_settings_output():
    settings = BotSettings(discord_token="MTIz.secret.token")
    assert "secret" not in repr(settings) and "secret" not in str(settings.model_dump())


def test_healthcheck_follows_the_heartbeat(tmp_path):
    settings = BotSettings(data_dir=tmp_path, heartbeat_seconds=5)
    assert health.check(settings) == 1
    health.beat(settings)
    assert health.check(settings) == 0
    stale = str(float(settings.heartbeat_file.read_text()) - 60)
    settings.heartbeat_file.write_text(stale)
    assert health.check(settings) == 1


def _bot_against(api_url: str, gateway_url: str, token: str, data: Path) -> subprocess.CompletedProcess:
    """`python -m bot` against a Discord stand-in (or an address where none answers), until it exits."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DISCORD_"))} | {
        "PYTHONPATH": os.pathsep.join([str(SITE), str(REPO)]),
        "DOPPEL_TEST_DISCORD_API": api_url,
        "DOPPEL_TEST_DISCORD_GATEWAY": gateway_url,
        "DISCORD_TOKEN": token,
        "DATA_DIR": str(data),
    }
    return subprocess.run([sys.executable, "-m", "bot"], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


def _one_error(result: subprocess.CompletedProcess) -> str:
    """The sentence a refused start ends in: one line, no traceback; before it only discord.py's two log lines of a
    start (its notice about voice, and "logging in")."""
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if not LOG_LINE.match(line)] == lines[-1:], result.stderr
    assert len(lines) <= 3 and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


def test_a_token_discord_refuses_ends_in_a_sentence_and_its_own_exit_code(fake_discord, tmp_path):
    refused = fake_discord.expect_error(401)
    result = _bot_against(fake_discord.api_url, fake_discord.gateway_url, "abc", tmp_path / "data")
    assert result.returncode == exit_codes.TOKEN_REFUSED, result.stderr
    assert "Discord refused the bot's token (DISCORD_TOKEN)" in _one_error(result) and refused.seen >= 1
    assert "abc" not in result.stderr  # the token is never shown


def test_a_discord_that_cannot_be_reached_ends_in_a_sentence_and_its_own_exit_code(tmp_path):
    with socket.socket() as closed:  # bound, never listening: connections to it are refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        result = _bot_against(f"http://127.0.0.1:{port}/api/v10", f"ws://127.0.0.1:{port}/", "abc", tmp_path)
    assert result.returncode == exit_codes.DISCORD_UNREACHABLE, result.stderr
    assert "Discord cannot be reached (127.0.0.1" in _one_error(result)


def test_a_database_whose_header_is_overwritten_stops_the_start_as_needing_a_person(fake_discord, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    database = data / "doppel.sqlite3"
    with sqlite3.connect(database) as plain:
        plain.execute("CREATE TABLE t (x)")
    damaged = os.urandom(100) + database.read_bytes()[100:]
    database.write_bytes(damaged)
    result = _bot_against(fake_discord.api_url, fake_discord.gateway_url, fake_discord.token, data)
    assert result.returncode == exit_codes.NEEDS_A_PERSON, result.stderr
    assert f"The database {database} is not a database any more" in _one_error(result)
    assert database.read_bytes() == damaged
