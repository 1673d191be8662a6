"""The playground: `python -m bot playground` runs doppel on this machine with no Discord account and no token.

It starts the local Discord stand-in (package `fake_discord`), the real bot connected to it, and a web page on
127.0.0.1 that shows a server with a channel and a few members to act as: type slash commands, upload photos,
press buttons, fill modals, and watch the bot's messages as they are sent and edited.

Modules: `session` starts and stops it all, `cast` is the server and its members, `setup` the bot's settings,
`typed` turns what was typed into a slash command, `feed` streams a channel to the page, `render` and
`markdown` write the chat's HTML, `web` serves the page.
"""
