"""Mount options as adapters read them, and as they may be shown: secrets masked.

Credentials come from mount options (or the environment, which nsd never echoes). Anything
whose name suggests a secret is shown as `****`; an access key keeps its first four
characters so an operator can tell two keys apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from nsd import errors

SECRET_WORDS = ("key", "secret", "token", "password", "credential")
MASK = "****"


def is_secret(name: str) -> bool:
    return any(w in name.lower() for w in SECRET_WORDS)


def mask_value(name: str, value: str) -> str:
    if not is_secret(name):
        return value
    if name.lower() == "access_key" and len(value) > 8:
        return value[:4] + MASK  # the tail is what matters; the head tells keys apart
    return MASK


def mask_options(options: Mapping[str, str]) -> dict[str, str]:
    return {k: mask_value(k, str(v)) for k, v in options.items()}


def mask_uri(uri: str) -> str:
    """Credentials written into a URI (scheme://user:secret@host) never show."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1****@", uri)


def scrub(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every secret value replaced, for error messages that quote a library."""
    for value in secret_values:
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return text


def secret_values(options: Mapping[str, str]) -> list[str]:
    return [str(v) for k, v in options.items() if is_secret(k)]


class Options:
    """Typed reads of string options; a bad value is an Invalid naming the option."""

    def __init__(self, options: Mapping[str, str] | None, uri: str) -> None:
        self.raw = dict(options or {})
        self.uri = uri

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw.get(name)
        return default if value is None or value == "" else str(value)

    def number(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            shown = mask_value(name, raw)
            raise errors.Invalid(f"option {name} of {mask_uri(self.uri)} must be a number, got {shown!r}") from None

    def integer(self, name: str, default: int) -> int:
        return int(self.number(name, default))

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise errors.Invalid(f"option {name} of {mask_uri(self.uri)} must be true or false, got {raw!r}")
