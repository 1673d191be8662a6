import os
import subprocess
import sys

from bot import health
from bot.settings import BotSettings


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
    result = _python(["-m", "bot"], cwd=tmp_path, env_extra={"PYTHONPATH": os.getcwd()})
    assert result.returncode == 2
    assert "DISCORD_TOKEN is not set" in result.stderr and ".env" in result.stderr


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
