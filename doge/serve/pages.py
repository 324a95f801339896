"""serve's HTML views: the library, a name, a version, compare. Each reads ``request.app.state``
(``registry``, ``templates``, ``per_page``) as datasette's views do; :func:`doge.serve.app.create_app`
only assembles them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse

from doge.errors import DogeError, NotFound
from doge.gaps.compare import flatten
from doge.names import parse_ref
from doge.quality.summary import best, compare_rows, summary
from doge.registry.labels import parse_labels
from doge.registry.library import library_page
from doge.serve.common import headers_for, ref_url, status_for
from doge.urls import hide_passwords_in


def render(request: Request, template: str, status: int = 200, headers=None, **context) -> HTMLResponse:
    """``template`` rendered with ``context`` (every password in it hidden)."""
    templates = request.app.state.templates
    html = templates.get_template(template).render(**hide_passwords_in(context))
    return HTMLResponse(html, status_code=status, headers=headers)


def error_page(request: Request, exc: DogeError) -> HTMLResponse:
    return render(request, "error.html", status=status_for(exc), headers=headers_for(exc), message=str(exc))


def library(request: Request):
    state = request.app.state
    q = request.query_params
    where_texts = [w for w in q.getlist("where") if w.strip()]
    search = q.get("search", "").strip()
    try:
        where = parse_labels(where_texts)
        current = library_page(
            state.registry,
            where=where,
            search=search or None,
            page=page_number(q.get("page"), 1),
            per_page=state.per_page,
        )
    except DogeError as exc:
        return error_page(request, exc)
    for entry in current["entries"]:
        top = best(entry["evaluations"])
        entry["best"] = summary(top) if top else None
        entry["latest"] = entry["latest"].to_json()
    return render(request, "library.html", search=search, where=where_texts, **current)


def gap(request: Request):
    """``/gaps/NAME`` (a name's versions and history) or ``/gaps/REF`` (one version)."""
    text = request.path_params["ref"]
    try:
        ref = parse_ref(text)
        if ref.version is None and ref.alias is None:
            return name_page(request, ref.name)
        return version_page(request, text, request.query_params.get("diff", "").strip())
    except DogeError as exc:
        return error_page(request, exc)


def name_page(request: Request, name: str):
    registry = request.app.state.registry
    versions = registry.list(name)
    history = registry.history(name)
    if not versions:
        raise NotFound(
            f"every version of gap {name!r} was removed; its history is at /api/gaps/{ref_url(name)}/history"
        )
    aliases = {a: v.version for v in versions for a in v.aliases}
    return render(
        request,
        "name.html",
        name=name,
        versions=[v.to_json() for v in reversed(versions)],
        aliases=dict(sorted(aliases.items())),
        history=list(reversed(history)),
    )


def version_page(request: Request, ref: str, diff_ref: str):
    registry = request.app.state.registry
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
    return render(
        request,
        "version.html",
        gap=gv.to_json(),
        provenance=sorted(flatten(gv.provenance).items()),
        evaluations=[
            {**e, "summary": summary(e), "plot": plots.get(e["evaluation_id"])} for e in reversed(evaluations)
        ],
        previews=[a for a in reversed(attachments) if a["kind"] == "preview"],
        datasets=_datasets_made_with(request, attachments),
        others=others,
        diff=diff,
        diff_ref=diff_ref,
    )


def _datasets_made_with(request: Request, attachments: list[dict]) -> list[dict]:
    """The datasets doge augment recorded on a version, each linked when this serve shows it (--dataset)."""
    served = {str(d.root.resolve()): name for name, d in getattr(request.app.state, "datasets", {}).items()}
    shown = []
    for a in reversed(attachments):
        if a["kind"] != "dataset":
            continue
        settings = a.get("settings") if isinstance(a.get("settings"), dict) else {}
        shown.append({**a, "out": str(settings.get("out", "")), "served": served.get(str(settings.get("out", "")))})
    return shown


def compare(request: Request):
    registry = request.app.state.registry
    refs = [r.strip() for r in request.query_params.getlist("ref") if r.strip()]
    try:
        rows = compare_rows(registry, refs) if refs else []
    except DogeError as exc:
        return error_page(request, exc)
    return render(request, "compare.html", refs=refs, rows=rows, names=registry.names())


def page_number(text: str | None, default: int = 1) -> int:
    """A ``?page=`` value (1 and up; ``default`` when absent), or one DogeError line."""
    try:
        return max(1, int(text)) if text else default
    except ValueError:
        raise DogeError(f"page {str(text)[:40]!r}: give a number") from None
