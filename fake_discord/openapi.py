"""Request bodies checked against Discord's own OpenAPI 3.1 description.

Every REST route the stand-in serves is declared with the exact path template of
../shared/discord-api-spec/openapi.json, so a request maps to its operation without guessing.
If the operation has a request body schema, the JSON body (or a multipart body's `payload_json`)
is validated with jsonschema's draft 2020-12 validator; a failure becomes Discord's
400 / 50035 "Invalid Form Body" with the failing field nested the way Discord nests it.

Pragmatic departures from the literal spec, applied to an in-memory copy (the file is not edited):
- `SnowflakeType` also accepts a non-negative integer: discord.py sends `attachments[].id` as the
  integer index of the file, and Discord accepts integer snowflakes everywhere.
- `oneOf` is checked as `anyOf`: a body must match at least one alternative, and matching two is
  not an error. The referee's question is whether Discord accepts the body; the spec writes its
  own top-level unions as `anyOf` tagged `x-discord-union: oneOf`, so exclusivity is not something
  it promises, and an overlap between two alternatives would be the spec's bug, not the bot's.
  (Every body in tests/test_fake_discord.py also passes with strict `oneOf`.)
- `ApplicationCommand*Request.default_member_permissions` also accepts a string of digits: the
  spec says integer, Discord's documentation says string, and discord.py sends a string.
- `format` (uri, int32, snowflake) and `contentEncoding` are annotations only, as jsonschema
  treats them by default.
Everything else in a schema (types, required fields, enums, lengths, item counts, nesting) is enforced.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .errors import DiscordError, form_error

# Discord's own file (discord/discord-api-spec), kept outside the repository in ../shared beside the
# checkout (as CI lays it out); DISCORD_OPENAPI_SPEC points elsewhere.
_BESIDE_THE_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "discord-api-spec" / "openapi.json"
SPEC_PATH = Path(os.environ.get("DISCORD_OPENAPI_SPEC", _BESIDE_THE_CHECKOUT))
API_PREFIX = "/api/v10"
SPEC_URI = "urn:discord-openapi"

_DIGITS = {"type": "string", "pattern": "^[0-9]+$"}
# Bodies already found valid, per operation. Validation is a pure function of the body, so a body equal to one
# that passed passes again; a burst of identical callbacks (every defer sends the same one) would otherwise
# spend a fifth of a millisecond each resolving the same $refs, on the thread whose clock times the bot.
# Only small bodies are kept (those that repeat), only valid ones (a failure is judged afresh, to name its field).
_KNOWN_VALID_MAX_BYTES = 512
_KNOWN_VALID_PER_OPERATION = 256


class OpenAPI:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = _patched(spec)
        self.registry: Registry = Registry().with_resource(SPEC_URI, DRAFT202012.create_resource(self.spec))
        self._validators: dict[tuple[str, str], Draft202012Validator | None] = {}
        self._known_valid: dict[tuple[str, str], dict[str, None]] = {}  # insertion-ordered, oldest first

    @classmethod
    @functools.cache
    def load(cls, path: Path = SPEC_PATH) -> OpenAPI:
        """Parsed once per process: every stand-in shares the validators it builds."""
        if not path.is_file():
            raise FileNotFoundError(f"Discord's OpenAPI description is not at {path}; set DISCORD_OPENAPI_SPEC")
        return cls(json.loads(path.read_text()))

    def has_operation(self, method: str, template: str) -> bool:
        return method.lower() in self.spec["paths"].get(template, {})

    def request_schema(self, method: str, template: str) -> tuple[dict | None, bool]:
        """(schema, required) of the operation's request body; schema None when it takes none."""
        operation = self.spec["paths"][template][method.lower()]
        body = operation.get("requestBody")
        if body is None:
            return None, False
        content = body["content"]
        # payload_json carries the JSON fields of a multipart body, so the JSON schema judges both.
        media = content.get("application/json") or next(iter(content.values()))
        return media["schema"], bool(body.get("required"))

    def _validator(self, method: str, template: str) -> Draft202012Validator | None:
        key = (method.upper(), template)
        if key not in self._validators:
            schema, _ = self.request_schema(method, template)
            self._validators[key] = None if schema is None else Draft202012Validator(schema, registry=self.registry)
        return self._validators[key]

    def validate(self, method: str, template: str, body: Any) -> None:
        """Raise DiscordError(400, 50035) when `body` does not fit the operation's request schema."""
        if not self.has_operation(method, template):
            # Routes are declared with spec templates; reaching this is a bug in the stand-in.
            raise AssertionError(f"{method} {template} is not an operation of Discord's OpenAPI description")
        schema, required = self.request_schema(method, template)
        if schema is None:
            return
        if body is None:
            if required:
                raise form_error([], "BASE_TYPE_REQUIRED", "This request requires a body.")
            return
        # sort_keys: key order means nothing to a schema; json.dumps keeps 1, 1.0 and true apart, as the schema does.
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        known = self._known_valid.setdefault((method.upper(), template), {})
        if canonical in known:
            return
        validator = self._validator(method, template)
        assert validator is not None
        errors = list(validator.iter_errors(body))
        if errors:
            raise _as_discord_error(_most_telling(errors), errors)
        if len(canonical) <= _KNOWN_VALID_MAX_BYTES:
            known[canonical] = None
            if len(known) > _KNOWN_VALID_PER_OPERATION:
                del known[next(iter(known))]


class Unchecked(OpenAPI):
    """No description at hand (the playground on a machine without ../shared): every route is served and no
    body is checked. Discord's limits in rules.py still apply; tests always load the real file."""

    def __init__(self) -> None:
        super().__init__({"paths": {}, "components": {"schemas": {"SnowflakeType": {"type": "string"}}}})

    def has_operation(self, method: str, template: str) -> bool:
        return True

    def validate(self, method: str, template: str, body: Any) -> None:
        return None


def load_if_present(path: Path = SPEC_PATH) -> OpenAPI:
    """Discord's description if its file is there, else `Unchecked`."""
    return OpenAPI.load(path) if path.is_file() else Unchecked()


def _most_telling(errors: list[ValidationError]) -> ValidationError:
    """The error to report, looking inside unions for the alternative the body was meant to be.

    jsonschema's `best_match` opens unions by its own guess and often lands in the wrong branch of
    Discord's big unions (a button missing its style reported as a malformed text display). We pick
    the branch whose discriminator (`type`, or the JSON type itself) matched, preferring the one
    that got deepest, and report its deepest complaint: what Discord would name (e.g. `data.content`
    for an over-long callback message).
    """
    error = max(errors, key=relevance)  # among the top-level errors; unions are opened below
    while error.context:
        groups: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            groups.setdefault(sub.relative_schema_path[0], []).append(sub)
        parent_depth = len(error.absolute_path)

        def wrong_alternative(sub: ValidationError, parent_depth: int = parent_depth) -> bool:
            relative = list(sub.absolute_path)[parent_depth:]
            return (not relative and sub.validator == "type") or (
                relative == ["type"] and sub.validator in ("enum", "const")
            )

        def score(subs: list[ValidationError]) -> tuple[bool, int, int]:
            return (any(wrong_alternative(s) for s in subs), -max(len(s.absolute_path) for s in subs), len(subs))

        chosen = min(groups.values(), key=score)
        error = max(chosen, key=lambda s: len(s.absolute_path))
    return error


def _as_discord_error(error: ValidationError, all_errors: list[ValidationError]) -> DiscordError:
    path = list(error.absolute_path)
    kind = error.validator
    value = error.validator_value
    if kind == "required":
        missing = next((name for name in value if isinstance(error.instance, dict) and name not in error.instance), "?")
        result = form_error([*path, missing], "BASE_TYPE_REQUIRED", "This field is required")
    elif kind in ("maxLength", "maxItems", "maxProperties"):
        result = form_error(path, "BASE_TYPE_MAX_LENGTH", f"Must be {value} or fewer in length.")
    elif kind in ("minLength", "minItems", "minProperties"):
        result = form_error(path, "BASE_TYPE_MIN_LENGTH", f"Must be {value} or more in length.")
    elif kind == "enum":
        result = form_error(path, "BASE_TYPE_CHOICES", f"Value must be one of {tuple(value)}.")
    elif kind == "type":
        result = form_error(path, "BASE_TYPE_BAD_TYPE", f"Expected {value}: {error.message}")
    else:
        result = form_error(path, "BASE_TYPE_INVALID", error.message)
    result.detail = {"errors": result.errors, "schema": [_describe(e) for e in all_errors[:10]]}
    return result


def _describe(error: ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<body>"
    return f"{where}: {error.message[:200]}"


def _patched(spec: dict[str, Any]) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    schemas = spec["components"]["schemas"]
    schemas["SnowflakeType"] = {"anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]}
    for name, schema in schemas.items():
        permissions = (
            schema.get("properties", {}).get("default_member_permissions") if isinstance(schema, dict) else None
        )
        if name.startswith("ApplicationCommand") and permissions is not None:
            schema["properties"]["default_member_permissions"] = {"anyOf": [permissions, _DIGITS]}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "oneOf":
                    key = "anyOf"
                if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                    value = SPEC_URI + value  # absolute, so any sub-schema validates on its own
                out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return walk(spec)
