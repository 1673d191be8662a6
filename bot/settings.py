"""The bot's settings, from the environment and `.env` (see .env.example)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from contract.limits import MEMBER_STEPS, MIN_PHOTOS_TO_TRAIN, STEPS
from contract.settings import ENV_CONFIG, ModelSource, WorkSettings


class BotSettings(WorkSettings, ModelSource):
    """The bot's own, and what decides the GPU work (`WorkSettings`: sent in every request and in the
    generators' constructor, so a worker with another `.env` does the same work). `ModelSource`: the
    tokenizers the bot checks tokens with."""

    model_config = ENV_CONFIG

    discord_token: SecretStr | None = Field(None, description="The bot's token from the Discord developer portal.")
    data_dir: Path = Field(Path("data"), description="Where photos, adapters and the job database live.")
    ray_address: str | None = Field(None, description="A Ray cluster to join; unset starts a local Ray instance.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    discord_connections: int = Field(
        16, ge=1, le=256,
        description="Connections kept open to each Discord host; a burst of commands queues on them, not on new ones.",
    )
    heartbeat_seconds: int = Field(30, ge=5, le=600, description="How often the bot proves it is alive.")

    # GPU jobs
    ray_num_gpus: float | None = Field(None, ge=0, description="GPUs a local Ray declares; unset detects them.")
    ray_actor_prefix: str = Field("doppel", pattern=r"^[a-z0-9-]+$", description="Prefix of doppel's Ray actor names.")
    gpu_sharing: Literal["auto", "share", "yield"] = Field(
        "auto", description="share: train and generate side by side; yield: training steps aside; auto: by GPU memory."
    )
    share_min_gpu_gib: float = Field(40, description="In auto mode, GPUs with at least this memory share.")
    generator_gpu_share: float = Field(0.25, gt=0, lt=1, description="Ray's GPU fraction for a generator.")
    generation_max_wait_s: float = Field(30, gt=0, description="Longest a picture waits for training to step aside.")
    generation_timeout_s: float = Field(300, gt=0, description="A picture not made in this time is retried.")
    progress_interval_s: float = Field(3, ge=0, description="Least time between two progress reports of a job.")
    max_active_jobs_per_member: int = Field(5, ge=1, description="Queued plus running jobs one member may have.")
    max_job_attempts: int = Field(3, ge=1, description="Times a job is retried after its worker is lost.")
    worker_patience_s: float = Field(
        60, gt=0, description="How long a GPU worker that Ray is restarting is waited for before its job is requeued."
    )

    # How the generators run (their constructor's arguments)
    generator_max_adapters: int = Field(8, ge=4, le=64, description="Adapters kept loaded before the least used goes.")
    lora_hotswap: bool = Field(False, description="Swap adapters in place (for a compiled pipeline).")
    generator_compile: bool = Field(
        False,
        description="torch.compile the generator's transformer, warmed up at start; adapters are then always "
        "hotswapped into fixed slots, so switching members never recompiles.",
    )
    generator_fp8: bool = Field(
        False, description="Generate with fp8 weights and activations in the transformer blocks (torchao)."
    )
    generator_offload: bool | Literal["auto"] = Field(
        False,
        description="Keep the generator's models in CPU memory and move each to the GPU only while it runs "
        "(slower); auto does so on GPUs too small for the whole pipeline.",
    )

    # Discord and members
    discord_guild_id: int | None = Field(None, description="Register commands in this server only (instant).")
    allowed_guilds: list[int] = Field(
        [], description="Servers doppel serves (ids); empty serves any server it is invited to (a warning at start)."
    )
    member_disk_mb: int = Field(
        6144, ge=1, description="Disk one member may fill: photos, training snapshots, checkpoints, their pictures."
    )
    picture_retention_days: float = Field(30, gt=0, description="Days generated pictures are kept before deletion.")

    # Faults and operations
    backup_interval_hours: float = Field(24, gt=0, description="Hours between online backups of the database.")
    backup_keep_days: float = Field(14, gt=0, description="Days a database backup is kept in DATA_DIR/backups.")
    train_min_free_mb: int = Field(
        4096, ge=0, description="Free disk /train needs for checkpoints before it starts a run."
    )
    stop_grace_s: float = Field(
        45, gt=0, description="Longest a stop waits for running training to write its checkpoint."
    )
    attachment_hosts: list[str] = Field(
        ["cdn.discordapp.com", "media.discordapp.net"], description="Hosts photos may be downloaded from."
    )
    attachment_schemes: list[str] = Field(["https"], description="URL schemes photos may be downloaded over.")
    max_photos: int = Field(40, ge=1, le=200, description="Photos one member may keep.")
    min_photos_to_train: int = Field(MIN_PHOTOS_TO_TRAIN, ge=1, description="Photos needed before /train.")
    face_checks: bool = Field(True, description="Look for the member's face in each photo (dlib, on the CPU).")
    min_photo_side: int = Field(512, ge=16, description="Shortest side, in pixels, a training photo may have.")
    max_upload_mb: int = Field(20, ge=1, le=100, description="Largest photo file accepted, in MB.")
    trainings_per_day: int = Field(3, ge=1, description="Trainings one member may start in 24 hours.")
    pictures_per_hour: int = Field(60, ge=1, description="Pictures one member may ask for in an hour.")
    pictures_per_day: int = Field(300, ge=1, description="Pictures one member may ask for in 24 hours.")
    request_cooldown_s: float = Field(
        0, ge=0, description="Seconds a member waits between two picture requests; 0: no wait."
    )
    train_roles: list[str] = Field(
        [], description="Roles (names or ids) whose members may train; empty: everyone."
    )
    draw_roles: list[str] = Field(
        [], description="Roles (names or ids) whose members may ask for pictures; empty: everyone."
    )
    style_roles: list[str] = Field(
        [], description="Roles (names or ids) whose members may create, train and delete the server's styles; "
        "empty: members with the Manage Server permission.",
    )
    style_min_pictures: int = Field(10, ge=1, description="Pictures a style needs before /style train.")
    style_max_pictures: int = Field(50, ge=1, le=200, description="Pictures one style may keep.")
    train_default_steps: int = Field(
        1000, ge=MEMBER_STEPS.low, le=STEPS.high, description="Training steps when /train is not told."
    )
    train_max_steps: int = Field(
        3000, ge=MEMBER_STEPS.low, le=STEPS.high,
        description="Most training steps /train (and Train more) accepts, from 10; at most 10000.",
    )

    @property
    def database_file(self) -> Path:
        return self.data_dir / "doppel.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def heartbeat_file(self) -> Path:
        return self.data_dir / "heartbeat"
