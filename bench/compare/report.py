"""The results as files: ``<stem>.json`` (everything), ``<stem>.md`` (the tables) and
``<stem>.png`` (the ratios to the raw driver, drawn by matplotlib)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Results = Mapping[str, Any]
TARGET = 0.8
"""The ratio to the raw driver that a single-call append or read should reach (dashed)."""


def write_json(results: Results, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def _number(value: object, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: object) -> str:
    return f"{value:.2f}x" if isinstance(value, int | float) else "–"


def contender_table(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| contender | append msg/s | × raw | p50 / p99 µs | read-20 reads/s | × raw "
        "| p50 / p99 µs | 32 tasks msg/s | × raw | verified |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in rows:
        name = row["name"] + (f" {row['version']}" if row.get("version") else "")
        if row["status"] == "skipped":
            lines.append(f"| {name} | skipped: {row['reason']} |" + " |" * 7 + " – |")
            continue
        cells = [name]
        for phase in ("append", "read", "concurrent"):
            p = row[phase]
            cells.append(_number(p["rate"]))
            cells.append(_ratio(p["ratio"]))
            if phase != "concurrent":
                cells.append(f"{_number(p['p50_us'])} / {_number(p['p99_us'])}")
        verdict = {"ok": "yes"}.get(row["status"], f"**{row['status']}**: {row['reason']}")
        cells.append(verdict)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def scale_table(scale: Mapping[str, Any]) -> list[str]:
    lines = [
        "| backend | sessions | list first page p50 / p99 µs | list deep page p50 / p99 µs "
        "| last 20 p50 / p99 µs | populated in s |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for backend, points in scale.items():
        for point in points:
            cells = [backend, f"{point['sessions']:,}"]
            for op in ("list_first", "list_deep", "last20"):
                found = point.get(op) or {}
                cells.append(f"{_number(found.get('p50_us'))} / {_number(found.get('p99_us'))}")
            cells.append(_number(point.get("populate_s"), 1))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(results: Results) -> str:
    w = results["workload"]
    lines = [
        f"# chatkeep and its peers, {results['date']}",
        "",
        f"{results['machine']['summary']}. Workload: {w['sessions']} sessions × "
        f"{w['messages']} messages of {w['size']} characters, one per call, sessions "
        f"interleaved; last {w['read_last']} read of every session × {w['read_rounds']}; "
        f"{w['tasks']} concurrent tasks × {w['task_messages']} messages. "
        f"Median of {w['repeat']} repetitions; × raw is the ratio to the raw driver of the "
        "same backend in the same repetition.",
        "",
    ]
    for backend in results["backends"]:
        lines += [f"## {backend['title']} ({backend['version']})", ""]
        lines += [*contender_table(backend["contenders"]), ""]
        lines += [f"- {r['name']}: {r['note']}" for r in backend["contenders"] if r.get("note")]
        lines.append("")
    if results.get("scale"):
        lines += ["## Listing and reading as sessions grow (chatkeep)", ""]
        lines += [*scale_table(results["scale"]), ""]
    for name, text in (results.get("separate") or {}).items():
        lines += [f"## {name}", "", text, ""]
    return "\n".join(lines)


def chart(results: Results, path: Path) -> None:
    """One panel per backend: each contender's append, read and concurrent ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = results["backends"]
    fig, axes = plt.subplots(1, len(backends), figsize=(5 * len(backends), 4.6), squeeze=False)
    labels = (("append", "append"), ("read", "read last 20"), ("concurrent", "32 tasks"))
    width = 0.26
    for ax, backend in zip(axes[0], backends, strict=True):
        rows = [r for r in backend["contenders"] if r["status"] != "skipped"]
        for i, (phase, label) in enumerate(labels):
            values = [(r.get(phase) or {}).get("ratio") or 0.0 for r in rows]
            xs = [n + (i - 1) * width for n in range(len(rows))]
            ax.bar(xs, values, width, label=label)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.axhline(TARGET, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([_label(r) for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set_title(f"{backend['title']}: rate ÷ raw driver")
        ax.set_ylabel("× raw (higher is faster)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(row: Mapping[str, Any]) -> str:
    name = _short(row["name"])
    return name if row["status"] == "ok" else f"{name}\n({row['status']})"


def _short(name: str) -> str:
    for long, short in (
        ("PostgresChatMessageHistory", "PG history"),
        ("SQLChatMessageHistory", "SQL history"),
        ("RedisChatMessageHistory", "Redis history"),
        ("langchain-postgres", "LangChain"),
    ):
        name = name.replace(long, short)
    return name


def write_all(results: Results, directory: Path, stem: str) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"{stem}.json", directory / f"{stem}.md", directory / f"{stem}.png"]
    write_json(results, paths[0])
    paths[1].write_text(markdown(results), encoding="utf-8")
    chart(results, paths[2])
    return paths
