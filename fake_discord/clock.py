"""The stand-in's own clock: real monotonic time plus an offset that tests can push forward.

Discord's deadlines (3 s to acknowledge an interaction, 15 minutes of webhook token life) are
measured on this clock, in the stand-in's thread. A blocked bot loop cannot stop it, and
`advance_clock` lets a test expire a deadline without sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

DISCORD_EPOCH_MS = 1420070400000


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        with self._lock:
            return time.monotonic() + self._offset

    def wall(self) -> datetime:
        """Wall-clock time as the stand-in sees it (for message timestamps)."""
        with self._lock:
            return datetime.now(UTC) + timedelta(seconds=self._offset)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds


class Snowflakes:
    """Discord-shaped ids: discord.py derives `created_at` from them, so they carry a real timestamp."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            ms = int(self._clock.wall().timestamp() * 1000) - DISCORD_EPOCH_MS
            candidate = ms << 22
            self._last = max(candidate, self._last + 1)  # strictly increasing even within one millisecond
            return self._last


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
