"""Known library warnings that say nothing a doppel user can act on, kept off the screen.

Each is matched by its logger and a part of its message, so every other warning of the same
library still shows. `SHOW_LIBRARY_WARNINGS=true` shows them all (when reporting a problem upstream).
Called first thing by `python -m trainer`, `python -m bot` and the Ray workers. No torch, no discord.
"""

from __future__ import annotations

import logging
import os
import warnings

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# (logger, part of the message); the comment says why it is noise
KNOWN = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward"),  # an optional CPU kernel package
    ("torchao", "Failed to load "),  # its C extensions for other GPUs and Pythons; fp8 works without them
    ("torchao.kernel.intmm", "Warning: Detected no triton"),  # no Triton on a CPU-only machine
    # torchao registers its enums with torch the deprecated way (one message per enum)
    ("torch.utils._pytree", "is an Enum subclass and is now natively supported"),
    ("discord.client", "PyNaCl is not installed"),  # voice support, which doppel never uses
    ("discord.client", "davey is not installed"),  # voice encryption, as PyNaCl
    # a local Ray is started from a thread of its own (bot/jobs/transport.py); the bot handles SIGTERM itself
    ("ray._private.worker", "SIGTERM handler is not set"),
    # Ray turns its token authentication on for a new local Ray, and says so each start
    ("ray._private.authentication.authentication_token_setup", "Token authentication is enabled"),
)
# Library loggers whose INFO and WARNING chatter (advice, progress) is turned down to errors.
CHATTY = ("diffusers", "transformers", "peft")


class LibraryWarningSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    show_library_warnings: bool = Field(
        False, description="Show the libraries' known, harmless start-up warnings (torchao, triton, PyNaCl, Ray...)."
    )


class _KnownMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_library_warnings(show: bool | None = None) -> bool:
    """Keep the known warnings out of the logs (before the libraries are imported); returns whether it did.

    `show` None reads SHOW_LIBRARY_WARNINGS.
    """
    if show is None:
        show = LibraryWarningSettings().show_library_warnings
    if show:
        return False
    for name, text in KNOWN:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownMessage) and f.text == text for f in logger.filters):
            logger.addFilter(_KnownMessage(text))
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", message=".*torchvision.*")
    # peft, as diffusers loads a second adapter into a pipeline: doppel loads several on purpose (group pictures)
    warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute in the model")
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.ERROR)
    return True
