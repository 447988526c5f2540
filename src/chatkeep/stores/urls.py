"""Store URLs as they may be shown: in errors, logs and health reports."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

_USERINFO = re.compile(r"(//[^/:@]*:)[^@/]*@")


def masked(url: str) -> str:
    """``url`` with any password replaced by ``***``, also in a malformed URL."""
    url = _USERINFO.sub(r"\1***@", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = "&".join(
        f"{k}=***" if k in ("password", "sslpassword") else f"{k}={v}"
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))
