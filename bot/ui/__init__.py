"""How doppel's messages look: progress, contact sheets, buttons."""
