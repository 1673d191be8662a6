"""What `python -m bot` exits with, for a supervisor to act on (README, Operations, "Exit codes")."""

STOPPED = 0  # a graceful stop (SIGTERM, SIGINT)
FAILED = 1  # an error the bot cannot recover from by itself; a restart may mend it
BAD_CONFIGURATION = 2  # a setting or argument is missing or wrong: fix it, a restart does not
NEEDS_A_PERSON = 3  # the database cannot be used (bot/db.py says why and what to do): do not restart
TOKEN_REFUSED = 4  # Discord refused DISCORD_TOKEN: a new token is needed, a restart does not mend it
DISCORD_UNREACHABLE = 5  # Discord could not be reached at start (network, DNS): restart after a pause
