"""The kinds of value a setting takes: each parses text (from the environment or the
command line) or an already typed value, raises ``ValueError`` when it cannot, and says
what it accepts."""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final, Protocol

from chatkeep.stores.registry import supported_schemes

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(value: object, *, allow_zero: bool = False) -> timedelta:
    """``"1200"`` (seconds), ``"20m"``, ``"1h30m"``, ``"1d"``, a number or a timedelta.

    Raises ``ValueError`` for anything else, and for durations that are not positive.
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = "".join(value.lower().split())
        if NUMBER.fullmatch(text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(value)
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(value)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise ValueError(value) from None


# -- the kinds of value a setting takes ------------------------------------------------
# Each parses text (from the environment or the command line) or an already typed value,
# raises ValueError when it cannot, and says what it accepts.


class Kind(Protocol):
    @property
    def accepts(self) -> str:
        """Completes the error message "'<value>' is not ..."."""
        ...

    @property
    def metavar(self) -> str: ...

    def parse(self, value: object) -> object: ...


@dataclass(frozen=True, slots=True)
class Duration:
    off: str | None = None
    """A word that means "no duration" (parsed as ``None``), if the setting allows one."""
    metavar: str = "DURATION"

    @property
    def accepts(self) -> str:
        alternative = "" if self.off is None else f" or {self.off!r}"
        return f"a duration (seconds, or like 20m, 1h){alternative}"

    def parse(self, value: object) -> timedelta | None:
        if self.off is not None and isinstance(value, str) and value.strip().lower() == self.off:
            return None
        return parse_duration(value)


@dataclass(frozen=True, slots=True)
class Integer:
    low: int
    high: int
    metavar: str = "N"

    @property
    def accepts(self) -> str:
        return f"an integer from {self.low} to {self.high}"

    def parse(self, value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"\+?\d+", value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(value)
        if not self.low <= value <= self.high:
            raise ValueError(value)
        return value


@dataclass(frozen=True, slots=True)
class Size:
    """A number of bytes: ``"1048576"``, ``"512k"``, ``"1m"``, ``"1MiB"`` (powers of 1024)."""

    high: int
    metavar: str = "BYTES"

    @property
    def accepts(self) -> str:
        return f"a size from 1 to {self.high} bytes (like 65536, 512k, 1m)"

    def parse(self, value: object) -> int:
        if isinstance(value, str):
            found = re.fullmatch(r"(\d+)([kmg]?)(?:i?b)?", value.strip().lower())
            if found is None:
                raise ValueError(value)
            value = int(found[1]) << (10 * " kmg".index(found[2] or " "))
        return Integer(1, self.high).parse(value)


@dataclass(frozen=True, slots=True)
class Choice:
    kind: type[enum.StrEnum]

    @property
    def accepts(self) -> str:
        return "one of: " + ", ".join(member.value for member in self.kind)

    @property
    def metavar(self) -> str:
        return "|".join(member.value for member in self.kind)

    def parse(self, value: object) -> enum.StrEnum:
        if isinstance(value, self.kind):
            return value
        if not isinstance(value, str):
            raise ValueError(value)
        return self.kind(value.strip().lower())


class StoreUrl:
    metavar = "URL"

    @property
    def accepts(self) -> str:
        return "a store URL starting with " + ", ".join(f"{s}://" for s in supported_schemes())

    def parse(self, value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        scheme, sep, _ = text.partition("://")
        if not sep or scheme.lower() not in supported_schemes():
            raise ValueError(value)
        return text


class RedisUrl:
    metavar = "URL"
    accepts = "a Redis URL (redis://, rediss:// or unix://)"

    def parse(self, value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        scheme, sep, rest = text.partition("://")
        if not sep or not rest or scheme.lower() not in ("redis", "rediss", "unix"):
            raise ValueError(value)
        return text


class Directory:
    metavar = "DIR"
    accepts = "a directory path"

    def parse(self, value: object) -> Path:
        text = str(value).strip() if isinstance(value, str | os.PathLike) else ""
        if not text or any(ord(ch) < 32 for ch in text):
            raise ValueError(value)
        return Path(text).expanduser()


class FileName:
    metavar = "NAME"
    accepts = "a file name (without a directory)"

    def parse(self, value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        if not text or text in {".", ".."} or "/" in text or "\\" in text:
            raise ValueError(value)
        return text


class Host:
    metavar = "HOST"
    accepts = "a host name or an IP address"
    _NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*")

    def parse(self, value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        if self._NAME.fullmatch(text):
            return text
        return str(ipaddress.ip_address(text))


MIN_KEY_LENGTH = 16
_OWNER = re.compile(r"[^\s,:]{1,128}")


class ApiKeys:
    """``key1:owner1,key2:owner2``: each key (at least 16 characters) and the owner it
    stands for."""

    metavar = "KEY:OWNER,..."
    accepts = f"key:owner pairs separated by commas (keys of {MIN_KEY_LENGTH}+ characters)"

    def parse(self, value: object) -> tuple[tuple[str, str], ...]:
        if isinstance(value, tuple):
            value = ",".join(f"{key}:{owner}" for key, owner in value)
        if not isinstance(value, str):
            raise ValueError(value)
        pairs: dict[str, str] = {}
        for item in value.split(","):
            key, sep, owner = item.strip().partition(":")
            if not sep or len(key) < MIN_KEY_LENGTH or key in pairs:
                raise ValueError(value)
            if any(ch.isspace() for ch in key) or not _OWNER.fullmatch(owner):
                raise ValueError(value)
            pairs[key] = owner
        return tuple(pairs.items())


class Secret:
    metavar = "SECRET"
    accepts = f"a secret of at least {MIN_KEY_LENGTH} characters"

    def parse(self, value: object) -> str:
        text = value.strip() if isinstance(value, str) else ""
        if len(text) < MIN_KEY_LENGTH:
            raise ValueError(value)
        return text


class Flag:
    metavar = "BOOL"
    accepts = "true or false (also 1/0, yes/no, on/off)"
    _WORDS: Final = {
        **dict.fromkeys(("true", "1", "yes", "on"), True),
        **dict.fromkeys(("false", "0", "no", "off"), False),
    }

    def parse(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        if not isinstance(value, str) or value.strip().lower() not in self._WORDS:
            raise ValueError(value)
        return self._WORDS[value.strip().lower()]
