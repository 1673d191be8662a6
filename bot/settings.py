"""The bot's settings, from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class BotSettings(BaseSettings):
    # An empty `KEY=` in .env means "use the default", as .env.example is written.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    discord_token: SecretStr | None = Field(None, description="The bot's token from the Discord developer portal.")
    data_dir: Path = Field(Path("data"), description="Where photos, adapters and the job database live.")
    ray_address: str | None = Field(None, description="A Ray cluster to join; unset starts a local Ray instance.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    heartbeat_seconds: int = Field(30, ge=5, le=600, description="How often the bot proves it is alive.")

    @property
    def heartbeat_file(self) -> Path:
        return self.data_dir / "heartbeat"
