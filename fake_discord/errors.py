"""Discord's error responses, and the log of every one the stand-in sent.

Every response with status >= 400 is recorded. A test declares the ones it provokes with
`fake.expect_error(status, code)`; the `fake_discord` fixture fails the test on any other.
Errors that come from the stand-in itself (a route it does not implement, a bug in a handler)
are recorded as `internal` and can never be expected away.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

# Discord's JSON error codes used by the stand-in.
UNKNOWN_CHANNEL = 10003
UNKNOWN_GUILD = 10004
UNKNOWN_MESSAGE = 10008
UNKNOWN_WEBHOOK = 10015
UNKNOWN_MEMBER = 10007
UNKNOWN_USER = 10013
UNKNOWN_INTERACTION = 10062
ENTITY_TOO_LARGE = 40005
ALREADY_ACKNOWLEDGED = 40060
CANNOT_EDIT_OTHERS_MESSAGE = 50005
EMPTY_MESSAGE = 50006
INVALID_WEBHOOK_TOKEN = 50027
INVALID_FORM_BODY = 50035


class DiscordError(Exception):
    """Raised by a handler; becomes a response of Discord's error shape."""

    def __init__(
        self, status: int, code: int, message: str, errors: dict | None = None, *, detail: object = None
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.detail = detail  # for the test's failure report only; never sent to the bot

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def form_error(path: list[str | int], code: str, message: str) -> DiscordError:
    """A 50035 Invalid Form Body naming one field the way Discord nests it: {"a": {"0": {"b": {"_errors": [...]}}}}."""
    errors: dict = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(path):
        errors = {str(key): errors}
    return DiscordError(400, INVALID_FORM_BODY, "Invalid Form Body", errors)


@dataclass
class RecordedError:
    method: str
    path: str
    status: int
    code: int | None
    message: str
    detail: Any = None
    internal: bool = False  # the stand-in's own failure, not a rule of Discord

    def __str__(self) -> str:
        kind = "fake-discord internal error" if self.internal else "error"
        text = f"{kind}: {self.method} {self.path} -> {self.status} code={self.code} {self.message}"
        if self.detail:
            text += f"\n    {self.detail}"
        return text


@dataclass
class Expectation:
    status: int
    code: int | None
    seen: int = 0

    def matches(self, error: RecordedError) -> bool:
        return not error.internal and error.status == self.status and self.code in (None, error.code)


@dataclass
class ErrorLog:
    """Written from the stand-in's thread, read and configured from the test's: guarded by a lock."""

    errors: list[RecordedError] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, error: RecordedError) -> None:
        with self._lock:
            self.errors.append(error)
            for expectation in self.expectations:
                if expectation.matches(error):
                    expectation.seen += 1

    def expect(self, status: int, code: int | None = None) -> Expectation:
        with self._lock:
            expectation = Expectation(status, code)
            expectation.seen = sum(1 for error in self.errors if expectation.matches(error))
            self.expectations.append(expectation)
            return expectation

    def unexpected(self) -> list[RecordedError]:
        with self._lock:
            return [e for e in self.errors if not any(x.matches(e) for x in self.expectations)]
