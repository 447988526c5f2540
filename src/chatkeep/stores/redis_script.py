"""The Lua script that writes one session's changes after checking its record
(``lua/apply_session.lua``), sent by its SHA1 and by its text when the server has not
cached it (after a restart or ``SCRIPT FLUSH``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources import files

from redis.exceptions import NoScriptError, ResponseError

from chatkeep.stores.redis_link import Command, Link

SOURCE = (files("chatkeep.stores") / "lua" / "apply_session.lua").read_bytes()
SHA = hashlib.sha1(SOURCE).hexdigest()
MAX_WORDS = 4000
"""The longest command the script runs (Lua unpacks a command's words on its stack)."""


def fits(commands: Sequence[Command]) -> bool:
    """Whether the script can run every one of ``commands``."""
    return not commands or max(map(len, commands)) <= MAX_WORDS


async def apply(
    link: Link,
    record: str,
    lock: str,
    expected: bytes | None,
    commands: Sequence[Command],
    about: str,
) -> bool:
    """Run ``commands`` if the key ``record`` holds ``expected`` (None: nothing) and
    ``lock`` is free; False, with nothing written, if not. An error reply (a key of the
    wrong type: CorruptDataError naming ``about``) raises."""
    words: list[str | bytes | int | float] = [
        "EVALSHA",
        SHA,
        2,
        record,
        lock,
        "0" if expected is None else "1",
        b"" if expected is None else expected,
    ]
    for command in commands:
        words.append(len(command))
        words.extend(command)
    (reply,) = await link.replies(words)
    if isinstance(reply, NoScriptError):
        words[:2] = ("EVAL", SOURCE)
        (reply,) = await link.replies(words)
    if isinstance(reply, ResponseError):
        raise link.error(reply, about) from reply
    return bool(reply == 1)
