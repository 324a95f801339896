"""serve's JSON API: the CLI's ``--json`` output over HTTP, downloads, and token-guarded writes.
Each view reads ``request.app.state`` (``registry``, ``allow_writes``, ``tokens``) as datasette's
views do; :func:`doge.serve.app.create_app` only assembles them."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from doge.clock import acting_as
from doge.errors import DogeError
from doge.names import validate_name
from doge.quality.summary import compare_rows
from doge.registry.fsck import check_version
from doge.registry.labels import parse_labels
from doge.serve.auth import writer
from doge.serve.common import SAFE_HEADERS, download, headers_for, status_for
from doge.serve.guard import json_body
from doge.urls import hide_password, hide_passwords_in

if TYPE_CHECKING:
    from doge.registry.registry import GapVersion

log = logging.getLogger("doge")


def api_json(data, status: int = 200) -> JSONResponse:
    return JSONResponse(hide_passwords_in(data), status_code=status)


def api_error(exc: DogeError) -> JSONResponse:
    return JSONResponse({"error": hide_password(str(exc))}, status_code=status_for(exc), headers=headers_for(exc))


def gaps(request: Request):
    registry = request.app.state.registry
    q = request.query_params
    try:
        where = parse_labels([w for w in q.getlist("where") if w.strip()])
        name = q.get("name") or None
        rows, _ = registry.list_rows(validate_name(name) if name else None, where=where, search=q.get("search") or None)
    except DogeError as exc:
        return api_error(exc)
    # the rows' JSON as gap list --json writes it (stored provenance spliced in: fast for
    # 10,000 versions), with the password of any URL in it hidden
    body = "[" + ",".join(row.to_json_text() for row in rows) + "]"
    return Response(hide_passwords_in(body), media_type="application/json", headers=SAFE_HEADERS)


def gap(request: Request):
    registry = request.app.state.registry
    try:
        gv = registry.resolve(request.path_params["ref"])
        shown = {**gv.to_json(), "evaluations": registry.evaluations(gv), "previews": registry.previews(gv)}
        return api_json({**shown, "blob_problems": check_version(registry, gv, deep=False)})
    except DogeError as exc:
        return api_error(exc)


def history(request: Request):
    try:
        return api_json(request.app.state.registry.history(request.path_params["name"]))
    except DogeError as exc:
        return api_error(exc)


def compare(request: Request):
    refs = [r for r in request.query_params.getlist("ref") if r.strip()]
    if not refs:
        return api_json({"error": "give refs to compare: /api/compare?ref=NAME@v1&ref=NAME@v2"}, status=400)
    try:
        return api_json(compare_rows(request.app.state.registry, refs))
    except DogeError as exc:
        return api_error(exc)


def safetensors(request: Request):
    registry = request.app.state.registry
    try:
        gv = registry.resolve(request.path_params["ref"])
        data = registry.read_blob(gv)
    except DogeError as exc:
        return api_error(exc)
    return download(data, gv.file_name(), "application/octet-stream", gv.sha256)


def bundle(request: Request):
    from doge.registry.bundles import SUFFIX, write_bundle

    registry = request.app.state.registry
    try:
        gv = registry.resolve(request.path_params["ref"])
        with tempfile.TemporaryDirectory(prefix="doge-serve-") as tmp:
            path = Path(tmp) / "gap.doge"
            write_bundle(registry, [gv.ref], path)
            data = path.read_bytes()
    except DogeError as exc:
        return api_error(exc)
    return download(data, gv.file_name(SUFFIX), "application/zip")


def attachments(request: Request):
    try:
        return api_json(request.app.state.registry.attachments(request.path_params["ref"]))
    except DogeError as exc:
        return api_error(exc)


def attachment(request: Request):
    try:
        record, data = request.app.state.registry.read_attachment(request.path_params["ref"], request.path_params["id"])
    except DogeError as exc:
        return api_error(exc)
    return Response(
        data,
        media_type="image/png",
        headers={"ETag": f'"{record["sha256"]}"', "Cache-Control": "private, max-age=3600", **SAFE_HEADERS},
    )


# -- writes ------------------------------------------------------------------------------------


async def write(request: Request, change: Callable[[dict], object]):
    """Runs ``change(body)`` as the token's user when writes are allowed; answers the version's JSON."""
    try:
        user = writer(request)
        body = await json_body(request)
    except DogeError as exc:
        return api_error(exc)

    def run() -> object:
        with acting_as(f"{user} (doge serve)"):
            return change(body)

    try:
        gv = await run_in_threadpool(run)
    except DogeError as exc:
        return api_error(exc)
    log.warning("doge serve: %s by %s", request.url.path, user)
    return api_json(gv.to_json())  # type: ignore[attr-defined]


async def tag(request: Request):
    registry = request.app.state.registry
    return await write(request, lambda body: registry.tag(request.path_params["ref"], _text(body, "alias")))


async def untag(request: Request):
    registry = request.app.state.registry
    return await write(request, lambda body: registry.untag(request.path_params["ref"], _text(body, "alias")))


async def labels(request: Request):
    registry = request.app.state.registry

    def change(body: dict) -> GapVersion:
        values, remove = body.get("set") or {}, body.get("remove") or []
        if not isinstance(values, dict) or not isinstance(remove, list):
            raise DogeError('labels: send {"set": {"key": "value"}, "remove": ["key"]}')
        return registry.label(request.path_params["ref"], values, remove=remove)

    return await write(request, change)


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise DogeError(f'send {{"{key}": "..."}}')
    return value
