import re
from pathlib import Path

from bot.settings import BotSettings
from contract.library_warnings import LibraryWarningSettings
from contract.settings import WorkSettings
from trainer.settings import TrainerSettings

EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"
README = EXAMPLE.with_name("README.md")
SETTINGS = (BotSettings, TrainerSettings, LibraryWarningSettings)


def test_every_setting_is_explained_in_env_example():
    text = EXAMPLE.read_text()
    listed = set(re.findall(r"^([A-Z0-9_]+)=", text, flags=re.MULTILINE))
    settings = {name.upper() for cls in SETTINGS for name in cls.model_fields}
    assert listed == settings
    for name in settings:  # each with a comment line right above it
        assert re.search(rf"^# .+\n{name}=", text, flags=re.MULTILINE), name


def test_the_example_file_as_written_gives_the_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(EXAMPLE.read_text())
    for name in ("DISCORD_TOKEN", "HF_TOKEN", "RAY_ADDRESS", "MODEL_CACHE_DIR", "BASE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    bot, trainer = BotSettings(), TrainerSettings()
    assert bot.discord_token is None and bot.ray_address is None
    assert trainer.hf_token is None and trainer.model_cache_dir == Path.home() / ".cache" / "doppel"
    assert bot.base_model == "black-forest-labs/FLUX.1-dev" and bot.model_cache_dir == trainer.model_cache_dir


def test_a_worker_reads_nothing_that_decides_the_work():
    # The bot names the work in each request: a worker with another .env must do the same work.
    assert set(TrainerSettings.model_fields) == {"model_cache_dir", "hf_token"}
    assert set(WorkSettings.model_fields) <= set(BotSettings.model_fields)


def test_every_setting_has_a_described_row_in_the_readme_table():
    section = README.read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \|[^|\n]*\|(.*)\|$", section, flags=re.MULTILINE))
    listed = set(re.findall(r"^([A-Z0-9_]+)=", EXAMPLE.read_text(), flags=re.MULTILINE))
    settings = {name.upper() for cls in SETTINGS for name in cls.model_fields}
    assert sorted((listed | settings) - set(rows)) == []  # each needs a row: | `NAME` | default | what it does |
    assert [name for name in sorted(listed | settings) if len(rows[name].strip()) < 10] == []  # described
