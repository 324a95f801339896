"""URLs as a person may see them: every password hidden, wherever in the URL it sits."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# query parameters that hold secrets (libpq's password/sslpassword, fsspec and cloud keys, tokens)
_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth|signature|sig$", re.IGNORECASE)
_QUERY_PAIR = re.compile(r"([^&;=]+)=([^&;]*)")
HIDDEN = "***"


def hide_password(url: str) -> str:
    """``url`` with any password replaced by ``***`` (database and fsspec URLs alike): the one in
    the user-info part and any query parameter that holds a secret (``?password=``,
    ``&sslpassword=``, ``?token=``, ``?secret_key=`` ...)."""
    if "://" not in url:
        return url
    base, question, query = url.partition("?")
    try:
        parts = urlsplit(base)
        if parts.password is not None:
            host = parts.hostname or ""
            if parts.port is not None:
                host += f":{parts.port}"
            base = urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{HIDDEN}@{host}"))
    except ValueError:
        return "<unparsable URL>"
    return base + question + _QUERY_PAIR.sub(_hide_pair, query)


def _hide_pair(m: re.Match) -> str:
    key, value = m.group(1), m.group(2)
    return f"{key}={HIDDEN}" if _SECRET_KEY.search(key) and value else m.group(0)


_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")


def hide_passwords_in(value: Any) -> Any:
    """``value`` (text, or JSON-like lists and dicts of it) with the password of every URL in it
    hidden: what doge serve puts on a page or in its API passes through this."""
    if isinstance(value, str):
        return _URL_IN_TEXT.sub(lambda m: hide_password(m.group(0)), value) if "://" in value else value
    if isinstance(value, dict):
        return {k: hide_passwords_in(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [hide_passwords_in(v) for v in value]
    return value
