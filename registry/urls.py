"""URLs as a person may see them: every password hidden, wherever in the URL it sits."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit


def hide_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (database and fsspec URLs alike)."""
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparsable URL>"


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def hide_passwords_in(value):
    """``value`` (text, or JSON-like lists and dicts of it) with the password of every URL in it
    hidden: what doge serve puts on a page or in its API passes through this."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(lambda m: hide_password(m.group(0)), value) if "://" in value else value
    if isinstance(value, dict):
        return {k: hide_passwords_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [hide_passwords_in(v) for v in value]
    return value
