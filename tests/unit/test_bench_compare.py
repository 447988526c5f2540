"""The comparison suite's own logic: checking what contenders kept, and its reports.

Runs on chatkeep's in-memory store and contenders defined here; no peer package needed.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> dict[str, ModuleType]:
    monkeypatch.syspath_prepend(str(ROOT))
    names = ("contender", "ours", "report", "runner", "summary", "verify", "workload")
    return {name: importlib.import_module(f"bench.compare.{name}") for name in names}


def test_intact_sessions_have_no_problems(bench: dict[str, ModuleType]) -> None:
    verify = bench["verify"]
    sent = {"a": ["1", "2", "3"], "b": ["x"]}
    assert verify.problems(sent, {"a": ["1", "2", "3"], "b": ["x"]}) == []


@pytest.mark.parametrize(
    ("kept", "fault"),
    [
        (["1", "3"], "1 of 3 messages lost"),
        (["1", "3", "2"], "messages out of order"),
        (["1", "2", "2", "3"], "1 duplicated"),
        (["1", "2", "3", "9"], "1 not sent"),
        (["3", "1"], "1 of 3 messages lost, out of order"),
        ([], "3 of 3 messages lost"),
    ],
)
def test_lost_reordered_or_extra_messages_are_flagged(
    bench: dict[str, ModuleType], kept: list[str], fault: str
) -> None:
    assert bench["verify"].problems({"a": ["1", "2", "3"]}, {"a": kept}) == [f"a: {fault}"]


def test_a_read_that_is_not_the_newest_in_order_is_flagged(bench: dict[str, ModuleType]) -> None:
    verify = bench["verify"]
    sent = [str(n) for n in range(30)]
    assert verify.check_tail("a", sent, sent[-20:], 20) is None
    assert verify.check_tail("a", sent[:5], sent[:5], 20) is None
    assert "got 20 messages" in verify.check_tail("a", sent, sent[:20], 20)
    assert "got 19 messages" in verify.check_tail("a", sent, sent[-19:], 20)


def test_a_workload_rejects_bad_sizes(bench: dict[str, ModuleType]) -> None:
    workload = bench["workload"]
    with pytest.raises(ValueError, match="sessions"):
        workload.Workload(sessions=0)
    with pytest.raises(ValueError, match="size"):
        workload.Workload(size=8)
    w = workload.Workload(sessions=2, messages=3, tasks=1, task_messages=2, size=40)
    expected = w.expected()
    assert sorted(expected) == ["c00", "s0000", "s0001"]
    assert [len(t) for t in expected["s0001"]] == [40, 40, 40]
    assert expected["s0001"][2].startswith("s0001#00003 ")


class Lossy:
    """Stores messages in memory but drops every third one."""

    def __init__(self) -> None:
        self.kept: dict[str, list[str]] = {}
        self.calls = 0

    async def prepare(self, keys: Sequence[str]) -> None:
        self.kept = {key: [] for key in keys}

    async def append(self, key: str, text: str) -> None:
        self.calls += 1
        if self.calls % 3:
            self.kept[key].append(text)

    async def read(self, key: str, last: int) -> list[str]:
        return self.kept[key][-last:]

    async def stored(self, key: str) -> list[str]:
        return self.kept[key]

    async def close(self) -> None:
        return None


def lossy_count(reps: list[dict[str, Any]]) -> int:
    return sum(rep["lossy"].problem_count for rep in reps)


def backend_of(bench: dict[str, ModuleType], *, missing: bool = False) -> Any:
    contender = bench["contender"]

    @asynccontextmanager
    async def place() -> AsyncIterator[None]:
        yield None

    async def open_memory(_: object) -> Any:
        return await bench["ours"].ChatkeepStore.open("memory://")

    async def open_lossy(_: object) -> Any:
        return Lossy()

    async def open_missing(_: object) -> Any:
        raise ImportError("No module named 'absent_peer'")

    async def version() -> str:
        return "memory"

    entries = [
        contender.Entry("chatkeep in memory", "raw", "chatkeep", open_memory),
        contender.Entry("lossy", "peer", "lossy", open_lossy),
    ]
    if missing:
        entries.append(contender.Entry("absent", "peer", "absent-peer", open_missing))
    return contender.Backend("memory", "Memory", place, tuple(entries), version)


async def test_a_contender_that_loses_messages_is_flagged_and_a_missing_one_skipped(
    bench: dict[str, ModuleType],
) -> None:
    w = bench["workload"].Workload(
        sessions=3, messages=4, read_rounds=1, tasks=2, task_messages=3, repeat=2
    )
    backend = backend_of(bench, missing=True)
    reps = await bench["runner"].repeat(backend, w)
    rows = {row["name"]: row for row in bench["summary"].summarise(backend, reps, {})}

    good = rows["chatkeep in memory"]
    assert good["status"] == "ok", good["reason"]
    assert good["append"]["ratio"] == 1.0
    assert good["append"]["calls"] == 12
    assert good["read"]["calls"] == 3
    assert good["concurrent"]["calls"] == 6

    lossy = rows["lossy"]
    assert lossy["status"] == "lost or reordered messages"
    assert lossy["reason"].startswith(f"{lossy_count(reps)} problems, e.g. ")
    assert "s0002: 4 of 4 messages lost" in lossy["problems"]  # every third call is s0002
    assert any("a read of the last 20 got" in line for line in lossy["problems"])
    assert lossy["append"]["ratio"] > 0

    absent = rows["absent"]
    assert absent["status"] == "skipped"
    assert "absent-peer" in absent["reason"]
    assert "absent_peer" in absent["reason"]
    assert "append" not in absent


async def test_a_contender_that_raises_is_reported_as_failed(
    bench: dict[str, ModuleType],
) -> None:
    class Broken(Lossy):
        async def read(self, key: str, last: int) -> list[str]:
            raise ConnectionError("server went away")

    contender = bench["contender"]
    base = backend_of(bench)

    async def open_broken(_: object) -> Any:
        return Broken()

    backend = contender.Backend(
        "memory",
        "Memory",
        base.place,
        (base.entries[0], contender.Entry("broken", "peer", "broken", open_broken)),
        base.version,
    )
    w = bench["workload"].Workload(sessions=2, messages=2, tasks=1, task_messages=1, repeat=1)
    reps = await bench["runner"].repeat(backend, w)
    rows = {row["name"]: row for row in bench["summary"].summarise(backend, reps, {})}
    assert rows["broken"]["status"] == "failed"
    assert rows["broken"]["reason"] == "read: ConnectionError: server went away"
    assert rows["chatkeep in memory"]["status"] == "ok"


def results_of(bench: dict[str, ModuleType], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "date": "2030-01-01 00:00 UTC",
        "machine": {"summary": "2 CPUs"},
        "workload": bench["workload"].Workload().as_json(),
        "backends": [{"title": "Memory", "version": "memory", "contenders": rows}],
        "scale": {
            "SQLite": [
                {
                    "sessions": 10_000,
                    "list_first": {"p50_us": 100.0, "p99_us": 200.0},
                    "list_deep": {"p50_us": 110.0, "p99_us": 210.0},
                    "last20": {"p50_us": 50.0, "p99_us": 90.0},
                    "populate_s": 3.5,
                }
            ]
        },
        "separate": {"Server": "Not run: run it separately."},
    }


async def test_the_results_are_valid_json_and_markdown_tables(
    bench: dict[str, ModuleType], tmp_path: Path
) -> None:
    w = bench["workload"].Workload(sessions=2, messages=2, tasks=1, task_messages=1, repeat=1)
    backend = backend_of(bench, missing=True)
    reps = await bench["runner"].repeat(backend, w)
    rows = bench["summary"].summarise(backend, reps, {"chatkeep": "0.1.0"})
    results = results_of(bench, rows)

    report = bench["report"]
    report.write_json(results, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(results))

    text = report.markdown(results)
    tables = [line for line in text.splitlines() if line.startswith("|")]
    contender_lines = [line for line in tables if line.count("|") == 11]
    assert len(contender_lines) == 2 + 3  # header, rule, three contenders
    assert any("chatkeep in memory 0.1.0" in line and "| yes |" in line for line in tables)
    assert any("lossy" in line and "**lost or reordered messages**" in line for line in tables)
    assert any("absent" in line and "skipped:" in line for line in tables)
    scale_lines = [line for line in tables if line.count("|") == 7]
    assert scale_lines[-1] == "| SQLite | 10,000 | 100 / 200 | 110 / 210 | 50 / 90 | 3.5 |"
    assert "## Server\n\nNot run: run it separately." in text


def test_a_missing_or_failing_separate_script_is_reported(
    bench: dict[str, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    separate = importlib.import_module("bench.compare.separate")
    missing = separate.run_script("bench.absent_script", separate.run_server, True)
    assert missing.startswith("Not run: `bench.absent_script` cannot be imported")

    script = ModuleType("bench.fake_script")
    seen: list[list[str]] = []

    def main() -> None:
        seen.append(list(sys.argv))
        print("rate: 42")
        if "--quick" in sys.argv:
            raise SystemExit(3)

    script.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.fake_script", script)
    assert separate.run_script("bench.fake_script", separate.run_server, False) == (
        "```\nrate: 42\n```"
    )
    failed = separate.run_script("bench.fake_script", separate.run_server, True)
    assert failed.startswith("Failed (exit 3); run it separately.")
    assert "rate: 42" in failed
    assert seen == [["bench.fake_script"], ["bench.fake_script", "--quick"]]
