"""The web page's static files under ``/web/``: its scripts, its style sheet, its icon.

They ship inside the package (``chatkeep/web/``) and are open to every caller, like the
page at ``/``: the page asks for a token itself when the API needs one. Only plain file
names of the directory are served (no sub-paths); each answer carries an ``ETag`` so a
browser revalidates instead of downloading again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import PurePosixPath
from typing import Final

from fastapi import APIRouter, Header, Response

from chatkeep.server.auth import OPEN_PREFIX
from chatkeep.server.errors import error_response

MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]*\.(?:js|css|svg)")

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def asset(name: str) -> Asset | None:
    """The packaged file ``web/<name>``, or ``None`` when there is no such file."""
    return _read(name) if NAME.fullmatch(name) is not None else None


@lru_cache(maxsize=64)
def _read(name: str) -> Asset | None:
    resource = files("chatkeep").joinpath("web", name)
    if not resource.is_file():
        return None
    body = resource.read_bytes()
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    return Asset(body, MEDIA_TYPES[PurePosixPath(name).suffix], etag)


@router.get(OPEN_PREFIX + "{name}", include_in_schema=False)
async def web_asset(name: str, if_none_match: str | None = Header(default=None)) -> Response:
    found = asset(name)
    if found is None:
        return error_response(404, "not_found", f"no file {name!r} in the web page")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache"}
    if if_none_match == found.etag:
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.media_type, headers=headers)
