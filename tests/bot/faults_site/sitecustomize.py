"""For tests that run the bot as its own process (`python -m bot`): point discord.py at the local stand-in.

Put this folder on PYTHONPATH with DOPPEL_TEST_DISCORD_API and DOPPEL_TEST_DISCORD_GATEWAY set; the variables
are taken out of the environment at once, so nothing the bot starts (Ray's processes) imports discord for them.
"""

import os

_api = os.environ.pop("DOPPEL_TEST_DISCORD_API", None)
_gateway = os.environ.pop("DOPPEL_TEST_DISCORD_GATEWAY", None)
if _api and _gateway:
    import discord
    import yarl

    discord.http.Route.BASE = _api
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(_gateway)
    _init = discord.Client.__init__

    def _quick_ready(self, *args, **options):  # discord.py waits 2 s after the last GUILD_CREATE otherwise
        options.setdefault("guild_ready_timeout", 0.05)
        _init(self, *args, **options)

    discord.Client.__init__ = _quick_ready
