"""Store URLs as they may be shown: in errors, logs and health reports."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_USERINFO = re.compile(r"(//[^/:@]*:)[^@/]*@")
_SECRET_OPTIONS = ("password", "sslpassword")


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***``, also in a malformed URL."""
    url = _USERINFO.sub(r"\1***@", url)
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(k in _SECRET_OPTIONS for k, _ in pairs):
        return url
    query = "&".join(f"{k}=***" if k in _SECRET_OPTIONS else f"{k}={v}" for k, v in pairs)
    return urlunsplit(parts._replace(query=query))
