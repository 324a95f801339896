"""``doge serve``: a team's gap library in a browser, and the same facts as JSON.

A Starlette application over one :class:`doge.registry.Registry` (SQLite, or PostgreSQL with an
S3 blob store: whatever the CLI would use). Pages are server-rendered Jinja2 with autoescaping
(a description holding ``<script>`` is shown as text) and no JavaScript; every value from the
registry passes through :func:`doge.urls.hide_passwords_in` first, so no password of any
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
``/datasets``                           the ``--dataset`` folders served (augment and render outputs)
``/datasets/NAME``                      a grid with labels drawn: ``?class=``, ``?gap=``, ``?min=``/``?max=``
                                        (target score), ``?status=``, ``?kind=``, ``?page=``; per-class summary
``/datasets/NAME/images/INDEX``         one image beside its source and control maps, its labels listed
``/datasets/NAME/thumbs/INDEX``         its thumbnail (cached under DOGE_HOME by the image's sha256)
``/datasets/NAME/files/INDEX/WHAT``     ``image``, ``source``, ``mask``, ``control-NAME`` (inside the dataset only)
``POST /datasets/NAME/curation``        the page's form: ticked images marked rejected/kept (token field)
``/api/datasets``, ``/api/datasets/NAME``  the same as JSON
``POST /api/datasets/NAME/curation``    ``{"rejected": [doge_id], "kept": [...], "clear": [...]}`` (writes)
=====================================  ==============================================================

The views are module functions: HTML pages in :mod:`doge.serve.pages`, the JSON API in
:mod:`doge.serve.api`, each reading ``request.app.state``; :func:`create_app` only assembles routes,
middleware and that state.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import doge
from doge.errors import DogeError
from doge.pluginmanager import forward_gap_events
from doge.registry import Registry
from doge.serve import api, dataset_pages, pages
from doge.serve.auth import TOKEN_ENV, parse_tokens, tokens_from_env
from doge.serve.common import SAFE_HEADERS, ref_url
from doge.serve.datasets import Thumbnails, dataset_names
from doge.serve.guard import HostAllowList, allowed_hosts
from doge.urls import hide_password

__all__ = ["PER_PAGE", "TOKEN_ENV", "SecurityHeaders", "create_app", "parse_tokens", "ref_url", "tokens_from_env"]

PER_PAGE = 50
STATIC = Path(__file__).with_name("static")


def templates(registry: Registry, *, allow_writes: bool) -> Environment:
    """serve's Jinja2 environment: autoescaping, the ``refurl`` filter, every template compiled now."""
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
    return env


def create_app(
    registry: Registry,
    *,
    allow_writes: bool = False,
    tokens: dict[str, str] | None = None,
    per_page: int = PER_PAGE,
    hosts: Iterable[str] | None = None,
    datasets=(),
    source_roots=(),
    dataset_per_page: int = dataset_pages.PER_PAGE,
) -> Starlette:
    """The web application over ``registry``, and over the output folders in ``datasets``. With
        ``allow_writes``, ``tokens`` ({token: user}) may tag, untag, label and mark dataset images;
        without it every write is refused. ``source_roots``: folders besides a dataset's own (OUT and
    its default work area) whose images serve shows as sources and control maps. ``hosts``: the Host names it answers (default: the loopback
        names; see :func:`doge.serve.guard.allowed_hosts`), any other is answered 400."""
    if allow_writes and not tokens:
        raise DogeError(f"--allow-writes needs a token: set {TOKEN_ENV}=USER:TOKEN (at least 8 characters)")
    forward_gap_events(registry)  # a write through the app reaches the plugins' gap_event hook
    routes = [
        Route("/", pages.library),
        Route("/compare", pages.compare),
        Route("/gaps/{ref}", pages.gap),
        Route("/api/gaps", api.gaps),
        Route("/api/compare", api.compare),
        Route("/api/gaps/{name}/history", api.history),
        Route("/api/gaps/{ref}/safetensors", api.safetensors),
        Route("/api/gaps/{ref}/bundle", api.bundle),
        Route("/api/gaps/{ref}/attachments", api.attachments),
        Route("/api/gaps/{ref}/attachments/{id:int}", api.attachment),
        Route("/api/gaps/{ref}/tag", api.tag, methods=["POST"]),
        Route("/api/gaps/{ref}/untag", api.untag, methods=["POST"]),
        Route("/api/gaps/{ref}/labels", api.labels, methods=["POST"]),
        Route("/api/gaps/{ref}", api.gap),
        Route("/datasets", dataset_pages.index),
        Route("/datasets/{name}", dataset_pages.dataset),
        Route("/datasets/{name}/images/{index:int}", dataset_pages.image),
        Route("/datasets/{name}/thumbs/{index:int}", dataset_pages.thumbnail),
        Route("/datasets/{name}/overlays/{index:int}", dataset_pages.overlay),
        Route("/datasets/{name}/files/{index:int}/{what}", dataset_pages.file),
        Route("/datasets/{name}/curation", dataset_pages.curate_form, methods=["POST"]),
        Route("/api/datasets", dataset_pages.api_index),
        Route("/api/datasets/{name}", dataset_pages.api_dataset),
        Route("/api/datasets/{name}/curation", dataset_pages.api_curate, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    allowed = frozenset(hosts) if hosts is not None else allowed_hosts()
    app = Starlette(
        routes=routes,
        middleware=[Middleware(HostAllowList, hosts=allowed), Middleware(SecurityHeaders)],
        exception_handlers={DogeError: _refused},
    )
    app.state.registry = registry
    app.state.datasets = dataset_names(datasets, source_roots)
    app.state.dataset_per_page = dataset_per_page
    app.state.thumbnails = Thumbnails(Path(registry.home) / "cache" / "thumbnails")
    app.state.templates = templates(registry, allow_writes=allow_writes)
    app.state.allow_writes = allow_writes
    app.state.tokens = dict(tokens or {})
    app.state.per_page = per_page
    app.state.hosts = allowed
    return app


def _refused(request: Request, exc: Exception) -> Response:
    """A DogeError no view caught (a busy registry while rendering, say): its status, not a 500."""
    assert isinstance(exc, DogeError)
    if request.url.path.startswith("/api/"):
        return api.api_error(exc)
    return pages.error_page(request, exc)


class SecurityHeaders:
    """Adds :data:`doge.serve.common.SAFE_HEADERS` to every HTTP response (ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode()) for k, v in SAFE_HEADERS.items() if k.lower().encode() not in have
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
