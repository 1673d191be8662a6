"""The playground's server: one text channel and the members a visitor can act as."""

from __future__ import annotations

from dataclasses import dataclass

from fake_discord import Channel, FakeDiscord, Guild, Member

# name -> whether they may Manage Server (the /admin commands)
MEMBERS = {"ann": False, "bob": False, "boss": True}


@dataclass
class Cast:
    guild: Guild
    general: Channel
    members: dict[str, Member]

    @classmethod
    def build(cls, fake: FakeDiscord) -> Cast:
        """Before the bot connects: its GUILD_CREATE then carries everyone."""
        guild = fake.add_guild("doppel playground")
        general = guild.add_text_channel("general")
        members = {name: guild.add_member(name, manage_guild=manager) for name, manager in MEMBERS.items()}
        return cls(guild, general, members)

    def member(self, name: str) -> Member:
        """The member called `name`, else the first one (a visitor's stale link still opens the page)."""
        return self.members.get(name) or next(iter(self.members.values()))
