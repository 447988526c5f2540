"""Live events between server instances over Redis pub/sub.

Each instance publishes what is stored through it, once, tagged with its own id so that
it ignores its own publications when they come back:

- ``<prefix>:session:<id>``: the messages of one session (one channel per session), which
  an instance follows while it has members in that session's room;
- ``<prefix>:lobby``: sessions created, deleted and expired, which every instance
  follows (for the lobby and for the rooms of ended sessions).

An instance keeps nothing that another needs: the messages themselves are in the shared
store, and members drop what they already have by ``seq``. When the channel's Redis goes
away, local delivery goes on; :class:`Fanout` shows it down (``/readyz``, ``/metrics``),
reconnects with backoff, follows its sessions again and hands each room's members the
stored messages they missed meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chatkeep.manager import SessionManager
from chatkeep.server.rooms import Item, LobbyChange, Rooms

logger = logging.getLogger("chatkeep.server.fanout")

DEFAULT_PREFIX: Final = "chatkeep"
FOLLOW_WITHIN: Final = 5.0
"""Seconds a join waits for its session's subscription to be confirmed."""
MAX_QUEUED: Final = 10_000
"""Publications waiting to be sent; past it the oldest is dropped (and counted)."""
RETRY_FIRST, RETRY_MOST = 0.05, 2.0
"""Seconds before reconnecting: doubling from the first to the most."""
_DOWN_ERRORS = (RedisError, OSError)


def split_url(url: str) -> tuple[str, str]:
    """The Redis URL without its ``prefix`` option, and that prefix (or the default)."""
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in options if k == "prefix"), "") or DEFAULT_PREFIX
    rest = urlencode([(k, v) for k, v in options if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


@dataclass(slots=True)
class ChannelState:
    """What ``/readyz`` and ``/metrics`` show of the channel."""

    up: bool = False
    connects: int = 0
    """Successful (re)connections since the start."""
    published: int = 0
    received: int = 0
    dropped: int = 0
    """Publications lost: the queue overflowed or Redis refused them."""
    last_error: str | None = None


class Fanout:
    """The channel of one server instance (see the module's description)."""

    def __init__(self, url: str, rooms: Rooms) -> None:
        redis_url, prefix = split_url(url)
        self.instance = secrets.token_hex(8)
        self.state = ChannelState()
        self._url = redis_url
        self._prefix = prefix
        self._lobby = f"{prefix}:lobby"
        self._rooms = rooms
        self._wanted: set[str] = set()
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: aioredis.client.PubSub | None = None
        self._commands = asyncio.Lock()
        self._outbox: deque[tuple[str, str]] = deque(maxlen=MAX_QUEUED)
        self._has_mail = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    @property
    def up(self) -> bool:
        return self.state.up

    def channel(self, session_id: str) -> str:
        return f"{self._prefix}:session:{session_id}"

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="chatkeep-fanout-listen"),
            asyncio.create_task(self._send(), name="chatkeep-fanout-send"),
        ]

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.state.up = False

    # -- the rooms' Channel protocol -------------------------------------------
    async def follow(self, session_id: str) -> None:
        channel = self.channel(session_id)
        self._wanted.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            return
        async with self._commands:
            waiting = self._confirmed.get(channel)
            if waiting is None:
                waiting = self._confirmed[channel] = asyncio.get_running_loop().create_future()
                try:
                    await pubsub.subscribe(channel)
                except _DOWN_ERRORS as exc:
                    self._confirmed.pop(channel, None)
                    logger.warning("following %s failed: %s", channel, exc)
                    return
        try:
            await asyncio.wait_for(asyncio.shield(waiting), FOLLOW_WITHIN)
        except TimeoutError:
            logger.warning("%s: no confirmation within %gs", channel, FOLLOW_WITHIN)

    def unfollow(self, session_id: str) -> None:
        channel = self.channel(session_id)
        self._wanted.discard(channel)
        if self._pubsub is not None and not self._closing:
            task = asyncio.get_running_loop().create_task(self._unsubscribe(channel))
            task.add_done_callback(self._tasks_done)

    def publish_messages(self, session_id: str, items: Sequence[Item]) -> None:
        body = {"from": self.instance, "items": [[seq, frame] for seq, frame in items]}
        self._queue(self.channel(session_id), body)

    def publish_lobby(self, change: LobbyChange) -> None:
        body = {
            "from": self.instance,
            "kind": change.kind,
            "sessionId": change.session_id,
            "owner": change.owner,
            "ownerKnown": change.owner_known,
            "frame": change.frame,
        }
        self._queue(self._lobby, body)

    # -- publishing -----------------------------------------------------------
    def _queue(self, channel: str, body: dict[str, Any]) -> None:
        if len(self._outbox) == self._outbox.maxlen:
            self.state.dropped += 1
        self._outbox.append((channel, json.dumps(body, separators=(",", ":"))))
        self._has_mail.set()

    async def _send(self) -> None:
        client: aioredis.Redis = aioredis.Redis.from_url(self._url)
        try:
            while True:
                while not self._outbox:
                    self._has_mail.clear()
                    await self._has_mail.wait()
                batch = list(self._outbox)
                self._outbox.clear()
                try:
                    async with client.pipeline(transaction=False) as pipe:
                        for channel, payload in batch:
                            pipe.publish(channel, payload)
                        await pipe.execute()
                    self.state.published += len(batch)
                except _DOWN_ERRORS as exc:
                    self.state.dropped += len(batch)
                    logger.warning("publishing %d events failed: %s", len(batch), exc)
        finally:
            await client.aclose()

    # -- listening ------------------------------------------------------------
    async def _listen(self) -> None:
        delay = RETRY_FIRST
        while True:
            client: aioredis.Redis = aioredis.Redis.from_url(self._url, health_check_interval=5)
            pubsub = client.pubsub()
            try:
                async with self._commands:
                    await pubsub.subscribe(self._lobby, *sorted(self._wanted))
                    self._pubsub = pubsub
                delay = RETRY_FIRST
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is not None:
                        self._handle(message)
            except _DOWN_ERRORS as exc:
                if self.state.up:
                    logger.warning("the channel is down, reconnecting: %s", exc)
                self.state.last_error = str(exc) or type(exc).__name__
            finally:
                self.state.up = False
                self._pubsub = None
                for waiting in self._confirmed.values():
                    if not waiting.done():
                        waiting.set_result(None)
                self._confirmed.clear()
                await _quietly_close(pubsub, client)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MOST)

    async def _unsubscribe(self, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is None:
            return
        async with self._commands:
            if channel in self._wanted:
                return
            self._confirmed.pop(channel, None)
            try:
                await pubsub.unsubscribe(channel)
            except _DOWN_ERRORS as exc:
                logger.warning("unfollowing %s failed: %s", channel, exc)

    def _handle(self, message: dict[str, Any]) -> None:
        try:
            self._dispatch(message)
        except Exception:
            logger.exception("handling an event from the channel failed")

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = _text(message.get("channel"))
        if kind == "subscribe":
            waiting = self._confirmed.setdefault(
                channel, asyncio.get_running_loop().create_future()
            )
            if not waiting.done():
                waiting.set_result(None)
            if channel == self._lobby:
                self._connected()
            return
        if kind != "message":
            return
        try:
            body = json.loads(message["data"])
            if not isinstance(body, dict):
                raise TypeError(f"expected an object, got {type(body).__name__}")
            if body.get("from") == self.instance:
                return
            if channel == self._lobby:
                change = _change(body)
                self.state.received += 1
                self._rooms.remote_lobby(change)
            else:
                session_id = channel.removeprefix(f"{self._prefix}:session:")
                items = [_item(entry) for entry in body["items"]]
                self.state.received += 1
                self._rooms.remote_messages(session_id, items)
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring a malformed event on %s: %s", channel, exc)

    def _connected(self) -> None:
        """Subscribed again: catch up with what the rooms here missed meanwhile."""
        self.state.up = True
        self.state.connects += 1
        if self.state.connects > 1:
            logger.info("the channel is back: following %d sessions", len(self._wanted))
        resumed = asyncio.get_running_loop().create_task(
            self._rooms.catch_up(self._rooms.sessions())
        )
        resumed.add_done_callback(self._tasks_done)

    def _tasks_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("a channel task failed", exc_info=task.exception())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _item(entry: object) -> Item:
    match entry:
        case [int() | None as seq, str() as frame] if not isinstance(seq, bool):
            return seq, frame
    raise TypeError(f"expected [seq, frame], got {entry!r:.80}")


def _change(body: dict[str, Any]) -> LobbyChange:
    kind = body["kind"]
    if kind not in ("session:created", "session:deleted", "session:expired"):
        raise ValueError(f"unknown kind {kind!r}")
    session_id, owner, known, frame = (
        body["sessionId"],
        body["owner"],
        body["ownerKnown"],
        body["frame"],
    )
    if not (
        isinstance(session_id, str)
        and (owner is None or isinstance(owner, str))
        and isinstance(known, bool)
        and isinstance(frame, str)
    ):
        raise TypeError("expected sessionId, owner, ownerKnown and frame of their types")
    return LobbyChange(kind, session_id, owner, known, frame)


async def _quietly_close(pubsub: aioredis.client.PubSub, client: aioredis.Redis) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
    except _DOWN_ERRORS:
        pass


@asynccontextmanager
async def live_events(state: Any, manager: SessionManager, url: str | None) -> AsyncIterator[None]:
    """The hub of ``manager``'s rooms kept on ``state`` (an app's), joined to the other
    instances through the Redis at ``url`` while the block runs (when ``url`` is given)."""
    rooms = Rooms.of(state, manager)
    if url is None:
        yield
        return
    fanout = Fanout(url, rooms)
    rooms.channel = fanout
    state.fanout = fanout
    fanout.start()
    try:
        yield
    finally:
        await fanout.close()
        rooms.channel = None
        del state.fanout
