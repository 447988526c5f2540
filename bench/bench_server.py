"""The server against the bare framework: REST appends and WebSocket fan-out.

    python bench/bench_server.py [--requests N] [--concurrency C] [--members M]
                                 [--messages K] [--rounds R] [--quick]
                                 [--baseline SRC] [--no-websocket]

Starts, on free ports of this machine, real uvicorn processes:

- ``chatkeep serve`` over its embedded SQLite store (a fresh data directory), and again
  over ``memory://`` (the same server without storage cost);
- the bare endpoints of the same framework: a FastAPI app (run by this file with
  ``--bare PORT``) whose ``POST /api/sessions/{id}/messages`` reads the JSON body and
  answers a JSON envelope, and whose ``/ws`` broadcasts each text frame to the other
  connections of its room and acks the sender. Nothing is stored.

Both are driven by the same clients in the same run, in alternating rounds (the median of
``--rounds`` is printed):

- REST: ``C`` concurrent httpx clients send ``N`` appends in total (one session per
  client); requests/s, and the p50 and p99 latency;
- WebSocket: ``M`` members join one session; one of them sends ``K`` messages (at most
  64 unacknowledged), and the others receive each one; deliveries/s counts the
  ``message:received`` frames every member got, from the first send to the last frame.

The ratios (chatkeep / bare) are what to compare across machines: the client runs on the
same (shared) machine, so absolute numbers say as much about it as about the server.

``--baseline SRC`` also runs ``chatkeep serve`` from another source tree (the ``src``
folder of an earlier version, e.g. ``git archive REV src | tar -x -C /tmp/old`` gives
``/tmp/old/src``) in the same rounds, with the same packages, and prints the ratios of the
version installed here to it. ``--no-websocket`` measures the REST appends only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect

CHATKEEP = Path(sys.executable).with_name("chatkeep")
READY_WITHIN = 30.0
IN_FLIGHT = 64


# -- the bare endpoints ------------------------------------------------------------------


def bare_app() -> FastAPI:
    """FastAPI doing only JSON in and out, and a WebSocket broadcast room."""
    app = FastAPI()
    rooms: dict[str, set[WebSocket]] = {}
    seqs: dict[str, int] = {}

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"success": True, "data": {"status": "alive"}}

    @app.post("/api/sessions")
    async def create(body: dict[str, Any]) -> dict[str, Any]:
        return {"success": True, "data": {"id": os.urandom(8).hex(), **body}}

    @app.post("/api/sessions/{session_id}/messages", status_code=201)
    async def append(session_id: str, body: dict[str, Any]) -> dict[str, Any]:
        seq = seqs[session_id] = seqs.get(session_id, 0) + 1
        message = {"sessionId": session_id, "seq": seq, **body}
        return {"success": True, "data": {"sessionId": session_id, "messages": [message]}}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        joined: set[str] = set()
        try:
            while True:
                frame = json.loads(await websocket.receive_text())
                sid = frame.get("sessionId", "")
                if frame["type"] == "session:join":
                    rooms.setdefault(sid, set()).add(websocket)
                    joined.add(sid)
                    await websocket.send_text(json.dumps({"type": "session:loaded"}))
                    history = {"type": "messages:history", "sessionId": sid, "messages": []}
                    await websocket.send_text(json.dumps(history))
                elif frame["type"] == "message:send":
                    seq = seqs[sid] = seqs.get(sid, 0) + 1
                    message = {"sessionId": sid, "seq": seq, "content": frame["content"]}
                    received = json.dumps(
                        {"type": "message:received", "sessionId": sid, "message": message}
                    )
                    for member in list(rooms.get(sid, ())):
                        if member is not websocket:
                            await member.send_text(received)
                    ack = {"type": "message:ack", "sessionId": sid, "seq": seq}
                    await websocket.send_text(json.dumps(ack))
        except WebSocketDisconnect:
            pass
        finally:
            for sid in joined:
                rooms.get(sid, set()).discard(websocket)

    return app


def serve_bare(port: int) -> None:
    import uvicorn

    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="info")


# -- processes ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(process: subprocess.Popen[bytes], base: str) -> None:
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{base}: the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{base} was not ready within {READY_WITHIN}s")


Command = Callable[[int], list[str]]
"""The command line of a server listening on the given port."""


@contextmanager
def server(command: Command, env: dict[str, str], cwd: Path) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        command(port),
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, base)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chatkeep_env(data_dir: Path, store: str | None, source: Path | None = None) -> dict[str, str]:
    """The environment of a ``chatkeep serve`` (from ``source``, a ``src`` folder, when
    given; else the package Python finds: the installed one, or one on ``PYTHONPATH``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATKEEP_")}
    for name in ("DATABASE_URL", "CHANNEL_REDIS_URL", "API_PORT", "API_HOST"):
        env.pop(name, None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    env["STORAGE_DATABASE_PATH"] = str(data_dir)
    env["CHATKEEP_WS_SEND_RATE"] = "1000000"
    env["CHATKEEP_WS_SEND_BURST"] = "1000000"
    env["CHATKEEP_WS_MAX_FRAME_BYTES"] = "1m"
    if store is not None:
        env["CHATKEEP_STORE_URL"] = store
    return env


# -- the workloads -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rest:
    per_second: float
    p50_ms: float
    p99_ms: float


async def rest_appends(base: str, requests: int, concurrency: int) -> Rest:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        sessions = []
        for _ in range(concurrency):
            made = await client.post("/api/sessions", json={})
            made.raise_for_status()
            sessions.append(made.json()["data"]["id"])
        share = requests // concurrency

        async def worker(sid: str) -> None:
            for n in range(share):
                body = {"role": "user", "content": f"message {n} of a benchmark run"}
                start = time.perf_counter()
                answer = await client.post(f"/api/sessions/{sid}/messages", json=body)
                latencies.append(time.perf_counter() - start)
                if answer.status_code != 201:
                    raise RuntimeError(f"append answered {answer.status_code}: {answer.text}")

        began = time.perf_counter()
        await asyncio.gather(*(worker(sid) for sid in sessions))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return Rest(
        per_second=len(latencies) / elapsed,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


async def expect(ws: ClientConnection, kind: str) -> dict[str, Any]:
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if frame["type"] == kind:
            return frame
        if frame["type"] == "error":
            raise RuntimeError(f"error frame: {frame}")


async def ws_fanout(base: str, members: int, messages: int) -> float:
    """Deliveries per second: ``message:received`` frames over every member."""
    async with httpx.AsyncClient(base_url=base) as client:
        sid = (await client.post("/api/sessions", json={})).json()["data"]["id"]
    url = base.replace("http://", "ws://") + "/ws"
    sockets = [await connect(url, max_queue=None) for _ in range(members)]
    try:
        for ws in sockets:
            await ws.send(json.dumps({"type": "session:join", "sessionId": sid}))
            await expect(ws, "messages:history")
        sender, receivers = sockets[0], sockets[1:]

        async def receive_all(ws: ClientConnection) -> None:
            for _ in range(messages):
                await expect(ws, "message:received")

        async def send_all() -> None:
            window = asyncio.Semaphore(IN_FLIGHT)

            async def acks() -> None:
                for _ in range(messages):
                    await expect(sender, "message:ack")
                    window.release()

            acking = asyncio.create_task(acks())
            for n in range(messages):
                await window.acquire()
                frame = {"type": "message:send", "sessionId": sid, "content": f"fan-out {n}"}
                await sender.send(json.dumps(frame))
            await acking

        began = time.perf_counter()
        await asyncio.gather(send_all(), *(receive_all(ws) for ws in receivers))
        elapsed = time.perf_counter() - began
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return len(receivers) * messages / elapsed


# -- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small numbers, one round")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="the src folder of another chatkeep version to run and compare with",
    )
    parser.add_argument("--no-websocket", action="store_true", help="measure the REST appends only")
    args = parser.parse_args()
    if args.bare is not None:
        serve_bare(args.bare)
        return
    if args.quick:
        args.requests, args.messages, args.rounds = 400, 50, 1
    if args.baseline is not None and not (args.baseline / "chatkeep" / "__init__.py").is_file():
        parser.error(f"--baseline: {args.baseline} is not a src folder holding chatkeep/")
    tmp = Path(tempfile.mkdtemp(prefix="ckbench"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    bare_env = {k: v for k, v in os.environ.items() if not k.startswith("CHATKEEP_")}

    def bare(port: int) -> list[str]:
        return [sys.executable, __file__, "--bare", str(port)]

    def chatkeep(port: int) -> list[str]:
        return [str(CHATKEEP), "serve", "--port", str(port)]

    targets: dict[str, tuple[Command, dict[str, str]]] = {
        BARE: (bare, bare_env),
        "chatkeep sqlite": (chatkeep, chatkeep_env(tmp / "sqlite", None)),
        "chatkeep memory": (chatkeep, chatkeep_env(tmp / "memory", "memory://")),
    }
    if args.baseline is not None:
        source = args.baseline.resolve()
        targets[f"{BASELINE} sqlite"] = (chatkeep, chatkeep_env(tmp / "b-sqlite", None, source))
        targets[f"{BASELINE} memory"] = (
            chatkeep,
            chatkeep_env(tmp / "b-memory", "memory://", source),
        )
        print(f"baseline: chatkeep from {source}")
    rest: dict[str, list[Rest]] = {name: [] for name in targets}
    fanout: dict[str, list[float]] = {name: [] for name in targets}
    websocket = f"; WebSocket: {args.members} members, {args.messages} messages"
    if args.no_websocket:
        websocket = ""
    print(
        f"REST: {args.requests} appends, {args.concurrency} concurrent{websocket}; "
        f"{args.rounds} round(s), {os.cpu_count()} CPUs",
        flush=True,
    )
    for round_number in range(args.rounds):
        for name, (command, env) in targets.items():
            with server(command, env, tmp) as base:
                rest[name].append(asyncio.run(rest_appends(base, args.requests, args.concurrency)))
                if not args.no_websocket:
                    fanout[name].append(asyncio.run(ws_fanout(base, args.members, args.messages)))
            print(f"  round {round_number + 1}: {name} done", flush=True)
    report(rest, fanout)


BARE = "bare FastAPI"
BASELINE = "baseline"


def _mid(values: list[float]) -> float:
    return statistics.median(values)


@dataclass(frozen=True, slots=True)
class Row:
    """The medians of one target's rounds (``ws``: ``None`` when not measured)."""

    rps: float
    p50: float
    p99: float
    ws: float | None

    @classmethod
    def of(cls, rest: list[Rest], fanout: list[float]) -> Row:
        return cls(
            rps=_mid([r.per_second for r in rest]),
            p50=_mid([r.p50_ms for r in rest]),
            p99=_mid([r.p99_ms for r in rest]),
            ws=_mid(fanout) if fanout else None,
        )

    def ratios(self, other: Row) -> str:
        text = (
            f"appends/s x{self.rps / other.rps:.2f}, p50 x{self.p50 / other.p50:.2f}, "
            f"p99 x{self.p99 / other.p99:.2f}"
        )
        if self.ws is not None and other.ws is not None:
            text += f", WS deliveries/s x{self.ws / other.ws:.2f}"
        return text


def report(rest: dict[str, list[Rest]], fanout: dict[str, list[float]]) -> None:
    rows = {name: Row.of(rest[name], fanout[name]) for name in rest}
    print(f"\n{'':18}{'appends/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'WS deliveries/s':>17}")
    for name, row in rows.items():
        ws = "-" if row.ws is None else f"{row.ws:.0f}"
        print(f"{name:18}{row.rps:11.0f}{row.p50:9.2f}{row.p99:9.2f}{ws:>17}")
    print("\nratios against the bare framework (chatkeep / bare):")
    for name, row in rows.items():
        if name != BARE:
            print(f"  {name}: {row.ratios(rows[BARE])}")
    baselines = [name for name in rows if name.startswith(BASELINE)]
    if baselines:
        print("\nratios against the baseline (chatkeep / baseline):")
        for name in baselines:
            store = name.removeprefix(BASELINE)
            print(f"  chatkeep{store}: {rows['chatkeep' + store].ratios(rows[name])}")


if __name__ == "__main__":
    main()
