"""One pooled Redis connection, driven directly: each call sends its commands in one
write and reads every reply (one round trip) within the store's time limit
(:class:`~chatkeep.stores.deadlines.Deadlines`), and turns driver errors into
chatkeep's."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from chatkeep.errors import CorruptDataError, StoreUnavailableError
from chatkeep.stores.deadlines import Deadlines

Command = Sequence[str | bytes | int | float]


class Link:
    """Commands on one connection; ``where`` names the server (password masked);
    ``deadlines`` bounds each round trip."""

    __slots__ = ("conn", "deadlines", "where")

    def __init__(self, conn: AbstractConnection, where: str, deadlines: Deadlines) -> None:
        self.conn = conn
        self.where = where
        self.deadlines = deadlines

    async def run(self, *commands: Command, about: str | None = None) -> list[Any]:
        """Send ``commands`` together and return their replies, in order.

        An error reply raises once every reply is read (the connection stays usable):
        a value of the wrong type raises CorruptDataError naming ``about`` (the session
        concerned), anything else StoreUnavailableError.
        """
        replies = await self.replies(*commands)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise self.error(reply, about) from reply
        return replies

    async def replies(self, *commands: Command) -> list[Any]:
        """Like :meth:`run`, but error replies are returned (as ResponseError values).

        A broken or interrupted connection is closed; the next call opens it again.
        """
        conn = self.conn
        replies: list[Any] = []
        deadlines = self.deadlines
        call = deadlines.begin()
        try:
            try:
                await conn.send_packed_command(pack(commands), check_health=False)
                for _ in commands:
                    try:
                        replies.append(
                            await conn.read_response(disable_decoding=True, timeout=math.inf)
                        )
                    except ResponseError as exc:
                        replies.append(exc)
            finally:
                late = deadlines.end(call)
        except (RedisError, OSError) as exc:
            await conn.disconnect(nowait=True)
            raise StoreUnavailableError(f"Redis at {self.where}: {exc}") from exc
        except BaseException as exc:
            await conn.disconnect(nowait=True)
            if late:
                raise StoreUnavailableError(
                    f"Redis at {self.where}: no reply within {deadlines.seconds:g} s"
                ) from exc
            raise
        return replies

    def error(self, reply: ResponseError, about: str | None) -> Exception:
        """The chatkeep error for an error reply of the server."""
        text = str(reply)
        if text.startswith("WRONGTYPE"):
            where = about or f"the store at {self.where}"
            return CorruptDataError(where, f"a key holds a value of the wrong type ({text})")
        return StoreUnavailableError(f"Redis at {self.where}: {text}")

    async def close(self) -> None:
        await self.conn.disconnect(nowait=True)


PACKED_WORDS = 4096
"""How many words (key names, command names...) are kept ready packed."""
_packed: dict[str, bytes] = {}


def pack(commands: Sequence[Command]) -> bytes:
    """``commands`` in the Redis protocol (RESP), ready to send in one write.

    Text words come packed from a small table: key and command names repeat from one
    call to the next, and encoding them word by word is most of the cost of packing.
    """
    out: list[bytes] = []
    put = out.append
    packed = _packed
    for command in commands:
        put(b"*%d\r\n" % len(command))
        for arg in command:
            if type(arg) is str:
                word = packed.get(arg)
                if word is None:
                    word = _word(arg.encode())
                    if len(packed) >= PACKED_WORDS:
                        packed.clear()
                    packed[arg] = word
                put(word)
            elif type(arg) is bytes:
                put(b"$%d\r\n" % len(arg))
                put(arg)
                put(b"\r\n")
            elif type(arg) is int:
                if 0 <= arg < SMALL_INTS:
                    put(_SMALL[arg])
                else:
                    data = b"%d" % arg
                    put(b"$%d\r\n%s\r\n" % (len(data), data))
            else:
                put(_word(_other(arg)))
    return b"".join(out)


def _word(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


SMALL_INTS = 256
"""Integers below this (word counts, small seqs...) come packed from a table."""
_SMALL = [_word(b"%d" % i) for i in range(SMALL_INTS)]


def _other(arg: object) -> bytes:
    """A word of another type than exactly ``str``, ``bytes`` or ``int``."""
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, int):
        return b"%d" % arg
    return repr(arg).encode()
