"""fake_discord: a local stand-in for Discord that an unmodified discord.py bot connects to.

See README.md in this folder for the guide, fixtures.py for the pytest fixtures
(register them with `pytest_plugins = ["fake_discord.fixtures"]`).
"""

from .api import FakeDiscord
from .errors import DiscordError, RecordedError
from .interactions import CommandNotAvailable, InvalidInteraction
from .model import Attachment, Channel, Guild, Interaction, Member, Message, Role, User
from .running import running_bot

__all__ = [
    "Attachment",
    "Channel",
    "CommandNotAvailable",
    "DiscordError",
    "FakeDiscord",
    "Guild",
    "Interaction",
    "InvalidInteraction",
    "Member",
    "Message",
    "RecordedError",
    "Role",
    "User",
    "running_bot",
]
