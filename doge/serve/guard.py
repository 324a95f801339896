"""What keeps ``doge serve`` safe to run: the Host allow-list (no DNS rebinding), and limits on
the JSON bodies that writes send."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from doge.errors import DogeError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")
ANY_HOST = "*"  # --allow-host '*': no Host check (a proxy in front checks it)
MAX_BODY_BYTES = 64 * 1024  # a tag, an untag or a label change is a few hundred bytes
MAX_BODY_DEPTH = 16


def allowed_hosts(host: str | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host names a server bound to ``host`` answers: the loopback names, ``host`` itself (and
    this machine's names when it is a wildcard such as 0.0.0.0), and ``extra`` (--allow-host)."""
    names = {*LOOPBACK_NAMES, *(normal_host(n) for n in extra if n.strip())}
    if host is not None:
        if host.strip("[]") in WILDCARDS:
            names |= {normal_host(socket.gethostname()), normal_host(socket.getfqdn())}
        else:
            names.add(normal_host(host))
    return frozenset(n for n in names if n)


def normal_host(text: str) -> str:
    """A Host header's name, lowercased, without its port or an IPv6 address's brackets."""
    text = text.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text[1:]
    if text.count(":") == 1:  # name:port (an IPv6 address without brackets has several)
        text = text.split(":", 1)[0]
    return text.rstrip(".")


class HostAllowList:
    """ASGI middleware: a request whose ``Host`` is not in ``hosts`` is answered 400, so a page on
    another site cannot reach this server through DNS rebinding."""

    def __init__(self, app, hosts: frozenset[str]):
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or ANY_HOST in self.hosts:
            return await self.app(scope, receive, send)
        given = [v for k, v in scope.get("headers", []) if k == b"host"]
        name = normal_host(given[0].decode("latin-1")) if len(given) == 1 else None
        if name in self.hosts:
            return await self.app(scope, receive, send)
        shown = given[0].decode("latin-1")[:100] if given else "(none)"
        body = (
            f"doge serve: Host {shown!r} is not one this server answers (it answers "
            f"{', '.join(sorted(self.hosts))}); behind a proxy or under another name, start it with "
            "--allow-host NAME\n"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def body_bytes(request: Request, fix: str) -> bytes:
    """The request's body, at most :data:`MAX_BODY_BYTES`: a DogeError (400, ending in ``fix``)
    otherwise, read no further than the limit."""
    declared = request.headers.get("content-length")
    too_big = f"the body is larger than {MAX_BODY_BYTES} bytes; {fix}"
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise DogeError(too_big)
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise DogeError(too_big)
    return bytes(data)


async def json_body(request: Request) -> dict:
    """The request's JSON object body, at most :data:`MAX_BODY_BYTES` and :data:`MAX_BODY_DEPTH`
    deep; a DogeError (400) otherwise, read no further than the limit."""
    data = await body_bytes(request, "send a small JSON object")
    if _depth_over(data, MAX_BODY_DEPTH):
        raise DogeError(f"the body is nested more than {MAX_BODY_DEPTH} levels deep; send a flat JSON object")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise DogeError("send a JSON object body") from None
    if not isinstance(body, dict):
        raise DogeError("send a JSON object body")
    return body


def _depth_over(data: bytes | bytearray, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than ``limit`` (checked before parsing)."""
    depth, in_string, escaped = 0, False, False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False
