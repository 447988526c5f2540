"""The page's files: served from the package under ``/web/``, open without a token, only
the files that are there; every file the page refers to exists; the wheel ships them."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from importlib.resources import files
from pathlib import Path

import httpx
import pytest

from chatkeep.config import Config, ServerConfig
from chatkeep.server import create_app

from .conftest import require_chromium

KEY = "web-test-key-0123456789"
WEB = Path(str(files("chatkeep").joinpath("web")))
ROOT = Path(__file__).resolve().parents[2]
REFERENCES = re.compile(r"""(?:src|href)="(/web/[^"]+)"|from "\./([^"]+)"|import\("\./([^"]+)"\)""")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Config(server=ServerConfig(api_keys=((KEY, "alice"),))))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def referenced(text: str) -> set[str]:
    return {Path(next(g for g in m.groups() if g)).name for m in REFERENCES.finditer(text)}


async def test_the_page_and_its_files_need_no_token(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert '<script type="module" src="/web/main.js">' in page.text
    script = await client.get("/web/main.js")
    assert script.status_code == 200
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.text == (WEB / "main.js").read_text(encoding="utf-8")
    style = await client.get("/web/app.css")
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert (await client.get("/web/icon.svg")).headers["content-type"] == "image/svg+xml"
    assert (await client.get("/api/sessions")).status_code == 401


async def test_a_file_is_revalidated_by_its_etag(client: httpx.AsyncClient) -> None:
    first = await client.get("/web/chat.js")
    assert first.headers["cache-control"] == "no-cache"
    etag = first.headers["etag"]
    again = await client.get("/web/chat.js", headers={"If-None-Match": etag})
    assert (again.status_code, again.content) == (304, b"")
    changed = await client.get("/web/chat.js", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200
    assert changed.content == first.content


@pytest.mark.parametrize(
    "path",
    ["/web/missing.js", "/web/index.html", "/web/Main.js", "/web/.hidden.js", "/web/x.py"],
)
async def test_only_the_page_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/web/../api/sessions", "/web/sub/main.js", "/web"])
async def test_nothing_else_is_open_under_the_prefix(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_every_file_the_page_refers_to_is_there() -> None:
    names = referenced((WEB / "index.html").read_text(encoding="utf-8"))
    for script in WEB.glob("*.js"):
        names |= referenced(script.read_text(encoding="utf-8"))
    assert "main.js" in names
    missing = sorted(n for n in names if not (WEB / n).is_file())
    assert missing == []
    unused = sorted(p.name for p in WEB.iterdir() if p.name not in names | {"index.html"})
    assert unused == []


@pytest.mark.slow
def test_the_wheel_ships_the_page(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("chatkeep-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    expected = {f"chatkeep/web/{p.name}" for p in WEB.iterdir() if p.is_file()}
    assert expected <= shipped
    assert len(expected) >= 10


def test_without_chromium_the_browser_tests_skip_or_fail_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "chromium"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        require_chromium(absent)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="chromium is not installed"):
        require_chromium(absent)
    absent.write_text("")
    require_chromium(absent)
