"""The model families doppel trains on: how to load them, build a tiny offline copy, and make them fit in memory."""
