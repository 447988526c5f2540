"""The ``chatkeep`` command line, on a SQLite file in a temporary directory."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

import chatkeep
from chatkeep.cli.main import app
from chatkeep.config import SETTINGS, Setting
from chatkeep.core.clock import Clock, FakeClock

T = TypeVar("T")
CHATKEEP = Path(sys.executable).with_name("chatkeep")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No configuration from the machine running the tests, and a wide terminal."""
    for setting in SETTINGS:
        for name in setting.env_names:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'chat.db'}"


def invoke(url: str | None, *args: str, input: str | None = None) -> Result:
    prefix = [] if url is None else ["--store", url]
    return CliRunner().invoke(app, [*prefix, *args], input=input)


def on_store(
    url: str, action: Callable[[chatkeep.Store], Awaitable[T]], clock: Clock | None = None
) -> T:
    async def go() -> T:
        async with chatkeep.open_store(url, clock=clock) as store:
            return await action(store)

    return asyncio.run(go())


def seed(url: str) -> list[chatkeep.Session]:
    """alice (tags a, b; 3 messages), bob (tag b), alice again (no tags), oldest first."""

    async def go(store: chatkeep.Store) -> list[chatkeep.Session]:
        first = await store.create_session(owner="alice", tags={"a", "b"}, metadata={"k": 1})
        await store.append_messages(
            first.id,
            [chatkeep.NewMessage(role="user", content=f"message {i}") for i in range(1, 4)],
        )
        second = await store.create_session(owner="bob", tags={"b"})
        third = await store.create_session(owner="alice")
        return [await store.get_session(s.id) for s in (first, second, third)]

    return on_store(url, go)


def seed_expired(url: str, expired_ago: timedelta) -> chatkeep.Session:
    """A session whose hour-long ttl ran out ``expired_ago``, by the real clock."""
    clock = FakeClock(datetime.now(UTC) - expired_ago - timedelta(hours=1))

    async def go(store: chatkeep.Store) -> chatkeep.Session:
        return await store.create_session(owner="old", ttl=timedelta(hours=1))

    return on_store(url, go, clock=clock)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- sessions list ---------------------------------------------------------------------


def test_list_as_json_most_recent_first(url: str) -> None:
    sessions = seed(url)
    result = invoke(url, "sessions", "list", "--json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json_lines(result.stdout)] == [s.id for s in reversed(sessions)]


def test_list_filters_by_owner_and_every_tag(url: str) -> None:
    first, second, third = seed(url)

    def ids(*args: str) -> list[str]:
        result = invoke(url, "sessions", "list", "--json", *args)
        return [r["id"] for r in json_lines(result.stdout)]

    assert ids("--owner", "alice") == [third.id, first.id]
    assert ids("--tag", "b") == [second.id, first.id]
    assert ids("--tag", "b", "--tag", "a") == [first.id]
    assert ids("--owner", "nobody") == []


def test_list_pages_with_the_printed_cursor(url: str) -> None:
    sessions = seed(url)
    seen: list[str] = []
    args = ["sessions", "list", "--json", "--limit", "2", "--sort", "created_at"]
    result = invoke(url, *args)
    seen += [r["id"] for r in json_lines(result.stdout)]
    cursor = result.stderr.strip().removeprefix("next page: --cursor ")
    result = invoke(url, *args, "--cursor", cursor)
    seen += [r["id"] for r in json_lines(result.stdout)]
    assert result.stderr == ""
    assert seen == [s.id for s in sessions]


def test_list_as_a_table(url: str) -> None:
    sessions = seed(url)
    result = invoke(url, "sessions", "list")
    assert result.exit_code == 0
    for session in sessions:
        assert session.id in result.stdout
    assert "alice" in result.stdout
    assert "a, b" in result.stdout


def test_list_of_an_empty_store(url: str) -> None:
    result = invoke(url, "sessions", "list")
    assert (result.exit_code, result.stdout) == (0, "no sessions\n")


def test_list_leaves_out_expired_sessions_unless_asked(url: str) -> None:
    old = seed_expired(url, timedelta(minutes=5))
    assert json_lines(invoke(url, "sessions", "list", "--json").stdout) == []
    listed = json_lines(invoke(url, "sessions", "list", "--json", "--include-expired").stdout)
    assert [r["id"] for r in listed] == [old.id]


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--sort", "size"], "error: sort: "), (["--cursor", "nonsense"], "error: cursor: ")],
)
def test_list_bad_input_is_one_line_and_exit_2(url: str, args: list[str], named: str) -> None:
    result = invoke(url, "sessions", "list", *args)
    assert result.exit_code == 2
    assert one_error_line(result).startswith(named)


def test_list_limit_is_checked_by_the_parser(url: str) -> None:
    result = invoke(url, "sessions", "list", "--limit", "0")
    assert result.exit_code == 2
    assert "--limit" in result.stderr


# -- sessions show / delete -------------------------------------------------------------


def test_show_prints_the_session_and_its_last_messages(url: str) -> None:
    first = seed(url)[0]
    result = invoke(url, "sessions", "show", first.id)
    assert result.exit_code == 0
    assert first.id in result.stdout
    assert "message 1" in result.stdout
    assert " 1d " in result.stdout  # the default ttl, written as a duration
    assert "message 3" in result.stdout
    record = json_lines(invoke(url, "sessions", "show", first.id, "--json", "-n", "2").stdout)[0]
    assert record["id"] == first.id
    assert record["owner"] == "alice"
    assert [m["content"] for m in record["messages"]] == ["message 2", "message 3"]
    record = json_lines(invoke(url, "sessions", "show", first.id, "--json", "-n", "0").stdout)[0]
    assert record["messages"] == []


def test_show_a_missing_session_is_one_line_and_exit_1(url: str) -> None:
    seed(url)
    result = invoke(url, "sessions", "show", "no-such-session")
    assert result.exit_code == 1
    assert one_error_line(result) == "error: session 'no-such-session' not found"
    assert result.stdout == ""


def test_show_an_expired_session_says_so(url: str) -> None:
    old = seed_expired(url, timedelta(minutes=1))
    result = invoke(url, "sessions", "show", old.id)
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: session {old.id!r} has expired"


def test_delete_with_yes(url: str) -> None:
    first = seed(url)[0]
    result = invoke(url, "sessions", "delete", first.id, "--yes")
    assert (result.exit_code, result.stdout) == (0, f"deleted session {first.id}\n")
    assert invoke(url, "sessions", "show", first.id).exit_code == 1
    assert len(json_lines(invoke(url, "sessions", "list", "--json").stdout)) == 2


def test_delete_asks_first(url: str) -> None:
    first = seed(url)[0]
    refused = invoke(url, "sessions", "delete", first.id, input="n\n")
    assert refused.exit_code == 1
    assert invoke(url, "sessions", "show", first.id).exit_code == 0
    agreed = invoke(url, "sessions", "delete", first.id, input="y\n")
    assert agreed.exit_code == 0
    assert invoke(url, "sessions", "show", first.id).exit_code == 1


def test_delete_a_missing_session_is_exit_1(url: str) -> None:
    result = invoke(url, "sessions", "delete", "ghost", "--yes")
    assert result.exit_code == 1
    assert one_error_line(result) == "error: session 'ghost' not found"


# -- export / import --------------------------------------------------------------------


def test_export_import_round_trip(url: str, tmp_path: Path) -> None:
    sessions = seed(url)
    dump = tmp_path / "dump.jsonl"
    result = invoke(url, "export", str(dump))
    assert result.exit_code == 0, result.output
    assert "exported 3 sessions" in result.stderr
    assert len(dump.read_text().splitlines()) == 4  # a header and three sessions
    assert not list(tmp_path.glob(".*.part"))

    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = invoke(other, "import", str(dump))
    assert (result.exit_code, result.stdout) == (0, "restored 3, skipped 0, failed 0\n")
    restored = json_lines(invoke(other, "sessions", "list", "--json").stdout)
    original = json_lines(invoke(url, "sessions", "list", "--json").stdout)
    assert restored == original
    shown = json_lines(invoke(other, "sessions", "show", sessions[0].id, "--json").stdout)[0]
    assert [m["content"] for m in shown["messages"]] == [
        "message 1",
        "message 2",
        "message 3",
    ]

    again = invoke(other, "import", str(dump))
    assert again.stdout == "restored 0, skipped 3, failed 0\n"
    overwrite = invoke(other, "import", str(dump), "--strategy", "overwrite")
    assert overwrite.stdout == "restored 3, skipped 0, failed 0\n"


def test_progress_bars_on_a_terminal(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(url)
    dump = tmp_path / "dump.jsonl"
    assert "exporting" not in invoke(url, "export", str(dump)).stderr
    monkeypatch.setenv("FORCE_COLOR", "1")
    exported = invoke(url, "export", str(dump))
    assert "exporting" in exported.stderr
    assert "3/3" in exported.stderr
    imported = invoke(f"sqlite:///{tmp_path / 'other.db'}", "import", str(dump))
    assert "importing" in imported.stderr
    assert imported.stdout == "restored 3, skipped 0, failed 0\n"
    assert "exporting" not in invoke(url, "export").stderr  # not when writing to stdout


def test_import_dry_run_changes_nothing(url: str, tmp_path: Path) -> None:
    seed(url)
    dump = tmp_path / "dump.jsonl"
    invoke(url, "export", str(dump))
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    result = invoke(empty, "import", str(dump), "--dry-run")
    assert result.exit_code == 0
    assert result.stdout == "dry run, nothing changed: would restore 3, skip 0, fail 0\n"
    assert invoke(empty, "sessions", "list").stdout == "no sessions\n"


def test_export_to_stdout_and_by_owner(url: str) -> None:
    seed(url)
    lines = json_lines(invoke(url, "export").stdout)
    assert lines[0]["format"] == "chatkeep-export"
    assert len(lines) == 4
    alice = json_lines(invoke(url, "export", "-", "--owner", "alice").stdout)[1:]
    assert {r["session"]["owner"] for r in alice} == {"alice"}
    assert len(alice) == 2


def test_export_of_expired_sessions_only_when_asked(url: str) -> None:
    old = seed_expired(url, timedelta(minutes=1))
    assert len(json_lines(invoke(url, "export").stdout)) == 1
    lines = json_lines(invoke(url, "export", "--include-expired").stdout)
    assert [r["session"]["id"] for r in lines[1:]] == [old.id]


def test_import_reports_bad_lines_and_exits_1(url: str, tmp_path: Path) -> None:
    seed(url)
    good = invoke(url, "export").stdout.splitlines()
    dump = tmp_path / "mixed.jsonl"
    dump.write_text("\n".join([good[0], good[1], "{not json", good[2]]) + "\n")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = invoke(other, "import", str(dump))
    assert result.exit_code == 1
    assert result.stdout == "restored 2, skipped 0, failed 1\n"
    assert "line 3:" in result.stderr
    assert len(json_lines(invoke(other, "sessions", "list", "--json").stdout)) == 2


def test_import_of_text_that_is_not_utf8_stops_with_one_line(url: str, tmp_path: Path) -> None:
    dump = tmp_path / "bad.jsonl"
    dump.write_bytes(b'{"format":"chatkeep-export","version":1,"exported_at":0}\n\xff\xfe\n')
    result = invoke(url, "import", str(dump))
    assert result.exit_code == 1
    assert "line 2" in one_error_line(result)


def test_import_from_stdin(url: str, tmp_path: Path) -> None:
    seed(url)
    text = invoke(url, "export").stdout
    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = invoke(other, "import", "-", input=text)
    assert result.stdout == "restored 3, skipped 0, failed 0\n"


def test_import_of_a_missing_file_is_one_line(url: str, tmp_path: Path) -> None:
    result = invoke(url, "import", str(tmp_path / "nope.jsonl"))
    assert result.exit_code == 1
    assert "nope.jsonl: No such file or directory" in one_error_line(result)


def test_export_into_a_missing_directory_leaves_nothing(url: str, tmp_path: Path) -> None:
    seed(url)
    result = invoke(url, "export", str(tmp_path / "missing" / "dump.jsonl"))
    assert result.exit_code == 1
    assert "No such file or directory" in one_error_line(result)
    assert not (tmp_path / "missing").exists()


def test_a_failed_export_keeps_the_previous_file(tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    dump.write_text("previous\n")
    result = invoke("sqlite:///", "export", str(dump))
    assert result.exit_code == 2
    assert dump.read_text() == "previous\n"
    assert not list(tmp_path.glob(".*.part"))


# -- cleanup / stats --------------------------------------------------------------------


def test_cleanup_removes_expired_sessions(url: str) -> None:
    live = seed(url)
    seed_expired(url, timedelta(days=2))
    kept = invoke(url, "cleanup", "--older-than", "3d")
    assert (kept.exit_code, kept.stdout) == (0, "1 expired sessions, 0 removed\n")
    result = invoke(url, "cleanup")
    assert (result.exit_code, result.stdout) == (0, "1 expired sessions, 1 removed\n")
    listed = json_lines(invoke(url, "sessions", "list", "--json", "--include-expired").stdout)
    assert {r["id"] for r in listed} == {s.id for s in live}
    assert invoke(url, "cleanup").stdout == "0 expired sessions, 0 removed\n"


def test_cleanup_rejects_a_bad_age(url: str) -> None:
    result = invoke(url, "cleanup", "--older-than", "soon")
    assert result.exit_code == 2
    assert "--older-than" in result.stderr


def test_stats(url: str) -> None:
    seed(url)
    seed_expired(url, timedelta(minutes=1))
    numbers = json_lines(invoke(url, "stats", "--json").stdout)[0]
    assert numbers["backend"] == "sqlite"
    assert numbers["total_sessions"] == 4
    assert numbers["active_sessions"] == 3
    assert numbers["expired_sessions"] == 1
    assert numbers["total_messages"] == 3
    assert numbers["sessions_by_owner"] == {"alice": 2, "bob": 1, "old": 1}
    table = invoke(url, "stats").stdout
    assert "sqlite store" in table
    assert "owner alice" in table


def test_migrate_reports_the_schema_version(url: str) -> None:
    result = invoke(url, "migrate")
    assert result.exit_code == 0, result.output
    assert result.stdout == "sqlite store is up to date (schema version 3)\n"


def test_migrate_on_a_file_that_is_not_a_database_fails(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    result = invoke(f"sqlite:///{bad}", "migrate")
    assert result.exit_code == 1
    assert "bad.db" in result.stderr


# -- demo -------------------------------------------------------------------------------


def test_demo_uses_the_default_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = invoke(None, "demo")
    assert first.exit_code == 0, first.output
    database = tmp_path / "chatkeep-data" / "chatkeep.db"
    assert database.is_file()
    assert str(database) in first.stdout
    assert "now holds 1 session(s)" in first.stdout
    assert "Will you still remember this" in first.stdout
    second = invoke(None, "demo")
    assert "now holds 2 session(s)" in second.stdout
    listed = json_lines(invoke(None, "sessions", "list", "--json", "--owner", "demo").stdout)
    assert len(listed) == 2
    assert all(r["message_count"] == 4 for r in listed)


# -- configuration ----------------------------------------------------------------------


def test_the_store_option_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_url = f"sqlite:///{tmp_path / 'from-env.db'}"
    option_url = f"sqlite:///{tmp_path / 'from-option.db'}"
    monkeypatch.setenv("CHATKEEP_STORE_URL", env_url)
    seed(option_url)
    assert len(json_lines(invoke(option_url, "sessions", "list", "--json").stdout)) == 3
    assert invoke(None, "sessions", "list").stdout == "no sessions\n"


def test_environment_settings_reach_the_store(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TTL", "never")
    monkeypatch.setenv("MAX_MESSAGES_PER_SESSION", "3")
    monkeypatch.setenv("CHATKEEP_DEFAULT_PERSISTENCE", "client")
    assert invoke(url, "demo").exit_code == 0
    listed = json_lines(invoke(url, "sessions", "list", "--json").stdout)
    assert listed[0]["ttl"] is None
    assert listed[0]["expires_at"] is None
    assert listed[0]["max_messages"] == 3
    assert listed[0]["message_count"] == 3
    assert listed[0]["persistence"] == "client"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_every_setting_has_an_option_in_the_help(setting: Setting) -> None:
    result = invoke(None, "--help")
    assert result.exit_code == 0
    assert f"{setting.option} " in result.stdout
    assert setting.env_names[0] in result.stdout


@pytest.mark.parametrize(
    ("variable", "text"),
    [("SESSION_TTL", "abc"), ("CHATKEEP_MAX_BACKUPS", "0"), ("DATABASE_URL", "mysql://x")],
)
def test_a_bad_environment_value_is_one_line_and_exit_2(
    url: str, monkeypatch: pytest.MonkeyPatch, variable: str, text: str
) -> None:
    monkeypatch.setenv(variable, text)
    result = invoke(None, "stats")
    assert result.exit_code == 2
    assert one_error_line(result).startswith(f"error: {variable}: {text!r} is not ")
    assert result.stdout == ""


def test_a_bad_option_value_names_the_option(url: str) -> None:
    result = invoke(url, "--session-ttl", "abc", "stats")
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "error: --session-ttl: 'abc' is not a duration (seconds, or like 20m, 1h) or 'never'"
    )


@pytest.mark.parametrize(
    "args",
    [["sessions", "delete", "x"], ["export", "out.jsonl"], ["import", "missing.jsonl"]],
)
def test_a_bad_environment_stops_a_command_before_it_does_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATKEEP_MAX_BACKUPS", "many")
    result = invoke(None, *args)
    assert result.exit_code == 2
    assert one_error_line(result).startswith("error: CHATKEEP_MAX_BACKUPS: 'many' is not ")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_environment_does_not_stop_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_TTL", "abc")
    assert invoke(None, "sessions", "list", "--help").exit_code == 0


@pytest.fixture
def script_env() -> dict[str, str]:
    """The environment for the installed script: this one, without chatkeep's variables."""
    return dict(os.environ)


@pytest.mark.slow
def test_the_installed_script_stops_on_a_bad_variable(
    tmp_path: Path, script_env: dict[str, str]
) -> None:
    script_env["SESSION_TTL"] = "abc"
    done = subprocess.run(
        [str(CHATKEEP), "stats"],
        cwd=tmp_path,
        env=script_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "error: SESSION_TTL: 'abc' is not a duration (seconds, or like 20m, 1h) or 'never'\n"
    )
    assert done.stdout == ""
    assert not (tmp_path / "chatkeep-data").exists()


@pytest.mark.slow
def test_the_installed_script_runs_the_demo(tmp_path: Path, script_env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(CHATKEEP), "demo"],
        cwd=tmp_path,
        env=script_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "chatkeep-data" / "chatkeep.db").is_file()


def test_the_cli_document_lists_every_setting() -> None:
    document = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for setting in SETTINGS:
        assert f"`{setting.option}`" in document, setting.name
        for name in setting.env_names:
            assert f"`{name}`" in document, name
