"""Run by test_crash.py: append to one session until killed, printing every acknowledged seq.

Usage: python crash_child.py <store url> <session id>
Each line printed is the seq of the last message of a batch that append_messages returned.
"""

from __future__ import annotations

import asyncio
import sys

import chatkeep
from chatkeep import NewMessage, SessionNotFoundError

PADDING = "x" * 300


def content(seq: int) -> str:
    return f"message {seq} {PADDING}"


async def main(url: str, session_id: str) -> None:
    async with chatkeep.open_store(url) as store:
        try:
            session = await store.get_session(session_id)
        except SessionNotFoundError:
            session = await store.create_session(id=session_id, ttl=None, max_messages=1_000_000)
        seq = session.last_seq
        size = 0
        while True:
            size = size % 3 + 1
            batch = [NewMessage(role="user", content=content(seq + i + 1)) for i in range(size)]
            stored = await store.append_messages(session_id, batch)
            seq = stored[-1].seq
            print(seq, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
