"""The workload every contender runs, and the messages it sends.

A session is named by a key (``s0007`` for the sequential phases, ``c12`` for the
concurrent one); every message is ``size`` characters long and starts with its key and
number, so a message read back tells where it belongs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from chatkeep.core.models import JSON

FILLER = "Could you summarise what we decided about the release and who does what next? "


@dataclass(frozen=True, slots=True)
class Workload:
    """How much work each contender does in one repetition."""

    sessions: int = 200
    messages: int = 50
    """Messages per session, appended one per call, one round over every session at a time."""
    size: int = 200
    """Characters per message."""
    read_last: int = 20
    read_rounds: int = 5
    tasks: int = 32
    """Concurrent tasks in the last phase, each appending to a session of its own."""
    task_messages: int = 25
    """Messages each concurrent task appends, one after the other."""
    repeat: int = 3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16 to hold the message's key, got {self.size}")

    def keys(self) -> list[str]:
        return [f"s{i:04d}" for i in range(self.sessions)]

    def task_keys(self) -> list[str]:
        return [f"c{i:02d}" for i in range(self.tasks)]

    def expected(self) -> dict[str, list[str]]:
        """Every session's messages, oldest first, once the workload has run."""
        found = {key: self.texts(key, self.messages) for key in self.keys()}
        found.update((key, self.texts(key, self.task_messages)) for key in self.task_keys())
        return found

    def texts(self, key: str, count: int) -> list[str]:
        return [message_text(key, seq, self.size) for seq in range(1, count + 1)]

    def as_json(self) -> dict[str, JSON]:
        return dict(asdict(self))


def message_text(key: str, seq: int, size: int) -> str:
    head = f"{key}#{seq:05d} "
    return (head + FILLER * (size // len(FILLER) + 1))[:size]
