"""Did a contender keep what it was sent? Count and order, session by session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence


def problems(
    expected: Mapping[str, Sequence[str]], found: Mapping[str, Sequence[str]]
) -> list[str]:
    """One line per session whose stored messages differ from those sent: lost,
    duplicated, unknown or reordered messages. Empty when every session is intact."""
    lines = []
    for key, sent in expected.items():
        line = compare(key, sent, found.get(key, ()))
        if line:
            lines.append(line)
    lines.extend(
        f"{key}: a session that was never written to" for key in found.keys() - expected.keys()
    )
    return lines


def compare(key: str, sent: Sequence[str], kept: Sequence[str]) -> str | None:
    """What is wrong with session ``key`` holding ``kept`` after ``sent``, or None."""
    if list(kept) == list(sent):
        return None
    want, have = Counter(sent), Counter(kept)
    faults = []
    lost = sum((want - have).values())
    extra = have - want
    duplicated = sum(n for text, n in extra.items() if text in want)
    unknown = sum(n for text, n in extra.items() if text not in want)
    if lost:
        faults.append(f"{lost} of {len(sent)} messages lost")
    if duplicated:
        faults.append(f"{duplicated} duplicated")
    if unknown:
        faults.append(f"{unknown} not sent")
    if not faults:
        faults.append("messages out of order")
    elif list(dict.fromkeys(t for t in kept if t in want)) != [t for t in sent if t in have]:
        faults.append("out of order")
    return f"{key}: " + ", ".join(faults)


def check_tail(key: str, sent: Sequence[str], returned: Sequence[str], last: int) -> str | None:
    """What is wrong with a read of the ``last`` newest messages of ``key``, or None."""
    want = list(sent[-last:])
    if list(returned) == want:
        return None
    return f"{key}: a read of the last {last} got {len(returned)} messages, not the newest in order"
