"""``doge serve``: a team's gap library in a browser, and the same facts as JSON.

A Starlette application over one :class:`doge.registry.Registry` (SQLite, or PostgreSQL with an
S3 blob store: whatever the CLI would use). Pages are server-rendered Jinja2 with autoescaping
(a description holding ``<script>`` is shown as text) and no JavaScript; every value from the
registry passes through :func:`doge.registry.urls.hide_passwords_in` first, so no password of any
URL reaches a page or the API. Read-only unless built with ``allow_writes``; then tag, untag and
label need ``Authorization: Bearer TOKEN`` and are recorded in the history under the token's user.

URLs (a ref in a URL is percent-encoded: ``real-%3Epainting@v2``):

=====================================  ==============================================================
``/``                                   the library: ``?search=``, ``?where=KEY=VALUE`` (repeatable), ``?page=``
``/gaps/NAME``                          a name: versions, aliases, history as a timeline
``/gaps/REF``                           a version: provenance, labels, evaluations with plots, previews,
                                        ``?diff=REF`` against another version, downloads
``/compare?ref=A&ref=B``                evaluations side by side
``/api/gaps``                           ``doge gap list --json`` (same ``search``/``where``, ``name=``)
``/api/gaps/REF``                       ``doge gap show --json``
``/api/gaps/NAME/history``              ``doge gap history --json``
``/api/compare?ref=A&ref=B``            ``doge gap compare --json``
``/api/gaps/REF/safetensors``           the version's file (``doge gap export``), sha-checked
``/api/gaps/REF/bundle``                a ``.doge`` bundle of the version (``doge gap export --bundle``)
``/api/gaps/REF/attachments``           the version's previews and plots (records)
``/api/gaps/REF/attachments/ID``        a preview or plot PNG, sha-checked
``POST /api/gaps/REF/tag``              ``{"alias": "prod"}`` (writes: see above)
``POST /api/gaps/NAME/untag``           ``{"alias": "prod"}``
``POST /api/gaps/REF/labels``           ``{"set": {"team": "vision"}, "remove": ["old"]}``
=====================================  ==============================================================
"""

from __future__ import annotations

import hmac
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import doge
from doge.clock import acting_as
from doge.errors import DogeError, IntegrityError, NotFound
from doge.gaps.compare import flatten
from doge.names import parse_ref, validate_name
from doge.pluginmanager import forward_gap_events
from doge.quality.summary import best, compare_rows, summary
from doge.registry import Registry
from doge.registry.fsck import check_version
from doge.registry.labels import parse_labels
from doge.registry.library import library_page
from doge.registry.urls import hide_password, hide_passwords_in

log = logging.getLogger("doge")

TOKEN_ENV = "DOGE_SERVE_TOKEN"
PER_PAGE = 50
STATIC = Path(__file__).with_name("static")


def parse_tokens(text: str | None) -> dict[str, str]:
    """``DOGE_SERVE_TOKEN``: ``TOKEN`` or ``USER:TOKEN``, several separated by commas -> {token: user}."""
    tokens: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, token = item.rpartition(":")
        if not sep:
            user, token = "token", item
        if len(token) < 8:
            raise DogeError(f"{TOKEN_ENV}: a token must be at least 8 characters (write USER:TOKEN, comma-separated)")
        tokens[token] = user or "token"
    return tokens


def ref_url(ref: str) -> str:
    """A ref as a URL path segment: ``real-%3Epainting@v2``."""
    return quote(str(ref), safe="@")


def create_app(
    registry: Registry, *, allow_writes: bool = False, tokens: dict[str, str] | None = None, per_page: int = PER_PAGE
) -> Starlette:
    """The web application over ``registry``. With ``allow_writes``, ``tokens`` ({token: user})
    may tag, untag and label; without it every write is refused."""
    if allow_writes and not tokens:
        raise DogeError(f"--allow-writes needs a token: set {TOKEN_ENV}=USER:TOKEN (at least 8 characters)")
    forward_gap_events(registry)  # a write through the app reaches the plugins' gap_event hook
    env = Environment(loader=PackageLoader("doge.serve", "templates"), autoescape=select_autoescape(default=True))
    env.filters["refurl"] = ref_url
    for name in env.list_templates(filter_func=lambda n: n.endswith(".html")):
        env.get_template(name)  # compiled now, not on a user's first request
    env.globals.update(
        version=doge.__version__,
        registry_url=hide_password(registry.url),
        blob_store=hide_password(str(registry.blobs.url)),
        allow_writes=allow_writes,
    )

    def page(template: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(env.get_template(template).render(**hide_passwords_in(context)), status_code=status)

    def error_page(exc: DogeError) -> HTMLResponse:
        return page("error.html", status=_status(exc), message=str(exc))

    def api_json(data, status: int = 200) -> JSONResponse:
        return JSONResponse(hide_passwords_in(data), status_code=status)

    def api_error(exc: DogeError) -> JSONResponse:
        return api_json({"error": hide_password(str(exc))}, status=_status(exc))

    # -- pages -------------------------------------------------------------------------------

    def library(request: Request):
        q = request.query_params
        where_texts = [w for w in q.getlist("where") if w.strip()]
        search = q.get("search", "").strip()
        try:
            where = parse_labels(where_texts)
            current = library_page(
                registry, where=where, search=search or None, page=_int(q.get("page"), 1), per_page=per_page
            )
        except DogeError as exc:
            return error_page(exc)
        for entry in current["entries"]:
            top = best(entry["evaluations"])
            entry["best"] = summary(top) if top else None
            entry["latest"] = entry["latest"].to_json()
        return page("library.html", search=search, where=where_texts, **current)

    def gap_page(request: Request):
        text = request.path_params["ref"]
        try:
            ref = parse_ref(text)
            if ref.version is None and ref.alias is None:
                return name_page(ref.name)
            return version_page(text, request.query_params.get("diff", "").strip())
        except DogeError as exc:
            return error_page(exc)

    def name_page(name: str):
        versions = registry.list(name)
        history = registry.history(name)
        if not versions:
            raise NotFound(
                f"every version of gap {name!r} was removed; its history is at /api/gaps/{ref_url(name)}/history"
            )
        aliases = {a: v.version for v in versions for a in v.aliases}
        return page(
            "name.html",
            name=name,
            versions=[v.to_json() for v in reversed(versions)],
            aliases=dict(sorted(aliases.items())),
            history=list(reversed(history)),
        )

    def version_page(ref: str, diff_ref: str):
        gv = registry.resolve(ref)
        evaluations = registry.evaluations(gv)
        attachments = registry.attachments(gv)
        plots = {a["evaluation_id"]: a for a in attachments if a["kind"] == "plot"}
        others = [v.ref for v in registry.list(gv.name) if v.ref != gv.ref]
        diff = None
        if diff_ref:
            from doge.gaps.compare import gap_diff  # numpy: only when a diff is asked for

            other = registry.resolve(diff_ref)
            diff = gap_diff(
                gv.ref,
                registry.load_vector(gv),
                gv.provenance,
                other.ref,
                registry.load_vector(other),
                other.provenance,
            )
        provenance = gv.provenance
        return page(
            "version.html",
            gap=gv.to_json(),
            provenance=sorted(flatten(provenance).items()),
            evaluations=[
                {**e, "summary": summary(e), "plot": plots.get(e["evaluation_id"])} for e in reversed(evaluations)
            ],
            previews=[a for a in reversed(attachments) if a["kind"] == "preview"],
            others=others,
            diff=diff,
            diff_ref=diff_ref,
        )

    def compare_page(request: Request):
        refs = [r.strip() for r in request.query_params.getlist("ref") if r.strip()]
        try:
            rows = compare_rows(registry, refs) if refs else []
        except DogeError as exc:
            return error_page(exc)
        return page("compare.html", refs=refs, rows=rows, names=registry.names())

    # -- JSON API -----------------------------------------------------------------------------

    def api_gaps(request: Request):
        q = request.query_params
        try:
            where = parse_labels([w for w in q.getlist("where") if w.strip()])
            name = q.get("name") or None
            rows, _ = registry.list_rows(
                validate_name(name) if name else None, where=where, search=q.get("search") or None
            )
        except DogeError as exc:
            return api_error(exc)
        # the rows' JSON as gap list --json writes it (stored provenance spliced in: fast for
        # 10,000 versions), with the password of any URL in it hidden
        body = "[" + ",".join(row.to_json_text() for row in rows) + "]"
        return Response(hide_passwords_in(body), media_type="application/json", headers=_SAFE_HEADERS)

    def api_gap(request: Request):
        try:
            gv = registry.resolve(request.path_params["ref"])
            shown = {**gv.to_json(), "evaluations": registry.evaluations(gv), "previews": registry.previews(gv)}
            return api_json({**shown, "blob_problems": check_version(registry, gv, deep=False)})
        except DogeError as exc:
            return api_error(exc)

    def api_history(request: Request):
        try:
            return api_json(registry.history(request.path_params["name"]))
        except DogeError as exc:
            return api_error(exc)

    def api_compare(request: Request):
        refs = [r for r in request.query_params.getlist("ref") if r.strip()]
        if not refs:
            return api_json({"error": "give refs to compare: /api/compare?ref=NAME@v1&ref=NAME@v2"}, status=400)
        try:
            return api_json(compare_rows(registry, refs))
        except DogeError as exc:
            return api_error(exc)

    def api_safetensors(request: Request):
        try:
            gv = registry.resolve(request.path_params["ref"])
            data = registry.read_blob(gv)
        except DogeError as exc:
            return api_error(exc)
        return _download(data, gv.file_name(), "application/octet-stream", gv.sha256)

    def api_bundle(request: Request):
        from doge.registry.bundles import SUFFIX, write_bundle

        try:
            gv = registry.resolve(request.path_params["ref"])
            with tempfile.TemporaryDirectory(prefix="doge-serve-") as tmp:
                path = Path(tmp) / "gap.doge"
                write_bundle(registry, [gv.ref], path)
                data = path.read_bytes()
        except DogeError as exc:
            return api_error(exc)
        return _download(data, gv.file_name(SUFFIX), "application/zip")

    def api_attachments(request: Request):
        try:
            return api_json(registry.attachments(request.path_params["ref"]))
        except DogeError as exc:
            return api_error(exc)

    def api_attachment(request: Request):
        try:
            record, data = registry.read_attachment(request.path_params["ref"], request.path_params["id"])
        except DogeError as exc:
            return api_error(exc)
        return Response(
            data,
            media_type="image/png",
            headers={"ETag": f'"{record["sha256"]}"', "Cache-Control": "private, max-age=3600", **_SAFE_HEADERS},
        )

    # -- writes --------------------------------------------------------------------------------

    async def write(request: Request, change):
        if not allow_writes:
            return api_json({"error": "this doge serve is read-only: start it with --allow-writes"}, status=403)
        user = _user(request, tokens or {})
        if user is None:
            return api_json(
                {"error": f"a write needs 'Authorization: Bearer TOKEN' with a token from {TOKEN_ENV}"}, status=401
            )
        try:
            body = await request.json()
        except ValueError:
            return api_json({"error": "send a JSON object body"}, status=400)
        if not isinstance(body, dict):
            return api_json({"error": "send a JSON object body"}, status=400)
        from starlette.concurrency import run_in_threadpool

        def run():
            with acting_as(f"{user} (doge serve)"):
                return change(body)

        try:
            gv = await run_in_threadpool(run)
        except DogeError as exc:
            return api_error(exc)
        log.warning("doge serve: %s by %s", request.url.path, user)
        return api_json(gv.to_json())

    async def api_tag(request: Request):
        return await write(request, lambda body: registry.tag(request.path_params["ref"], _text(body, "alias")))

    async def api_untag(request: Request):
        return await write(request, lambda body: registry.untag(request.path_params["ref"], _text(body, "alias")))

    async def api_labels(request: Request):
        def change(body):
            values, remove = body.get("set") or {}, body.get("remove") or []
            if not isinstance(values, dict) or not isinstance(remove, list):
                raise DogeError('labels: send {"set": {"key": "value"}, "remove": ["key"]}')
            return registry.label(request.path_params["ref"], values, remove=remove)

        return await write(request, change)

    routes = [
        Route("/", library),
        Route("/compare", compare_page),
        Route("/gaps/{ref}", gap_page),
        Route("/api/gaps", api_gaps),
        Route("/api/compare", api_compare),
        Route("/api/gaps/{name}/history", api_history),
        Route("/api/gaps/{ref}/safetensors", api_safetensors),
        Route("/api/gaps/{ref}/bundle", api_bundle),
        Route("/api/gaps/{ref}/attachments", api_attachments),
        Route("/api/gaps/{ref}/attachments/{id:int}", api_attachment),
        Route("/api/gaps/{ref}/tag", api_tag, methods=["POST"]),
        Route("/api/gaps/{ref}/untag", api_untag, methods=["POST"]),
        Route("/api/gaps/{ref}/labels", api_labels, methods=["POST"]),
        Route("/api/gaps/{ref}", api_gap),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.registry = registry
    return app


class SecurityHeaders:
    """Adds :data:`_SAFE_HEADERS` to every HTTP response (ASGI middleware)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode()) for k, v in _SAFE_HEADERS.items() if k.lower().encode() not in have
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_SAFE_HEADERS = {
    # no script runs on these pages, and nothing may frame them
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _status(exc: DogeError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, IntegrityError):
        return 500
    return 400


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, int(text)) if text else default
    except ValueError:
        raise DogeError(f"page {text!r}: give a number") from None


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise DogeError(f'send {{"{key}": "..."}}')
    return value


def _user(request: Request, tokens: dict[str, str]) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return None
    for token, user in tokens.items():
        if hmac.compare_digest(given.strip().encode(), token.encode()):
            return user
    return None


def _download(data: bytes, filename: str, media_type: str, sha256: str | None = None) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if sha256:
        headers["ETag"] = f'"{sha256}"'
    return Response(data, media_type=media_type, headers=headers)


def tokens_from_env() -> dict[str, str]:
    return parse_tokens(os.environ.get(TOKEN_ENV))
