"""What serve's pages and JSON API share: how an error maps to a status, the safe headers, downloads."""

from __future__ import annotations

from urllib.parse import quote

from starlette.responses import Response

from doge.errors import DogeError, IntegrityError, NotFound
from doge.registry.database import RegistryBusy
from doge.serve.auth import WriteRefused

RETRY_AFTER_S = 2  # what a busy registry asks a client to wait

SAFE_HEADERS = {
    # no script runs on these pages, and nothing may frame them
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def ref_url(ref: str) -> str:
    """A ref as a URL path segment: ``real-%3Epainting@v2``."""
    return quote(str(ref), safe="@")


def status_for(exc: DogeError) -> int:
    """The HTTP status of a refusal: 404 for what is not there, 401/403 for a write refused, 503
    for a busy registry, 500 for damage, else 400."""
    if isinstance(exc, WriteRefused):
        return exc.status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, RegistryBusy):
        return 503
    if isinstance(exc, IntegrityError):
        return 500
    return 400


def headers_for(exc: DogeError) -> dict[str, str]:
    """Extra headers of a refusal: ``Retry-After`` when the registry is busy."""
    return {"Retry-After": str(RETRY_AFTER_S)} if isinstance(exc, RegistryBusy) else {}


def download(data: bytes, filename: str, media_type: str, sha256: str | None = None) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if sha256:
        headers["ETag"] = f'"{sha256}"'
    return Response(data, media_type=media_type, headers=headers)
