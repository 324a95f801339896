"""serve's dataset views (``doge serve --dataset OUT``): the datasets, a dataset's grid with its labels
drawn, one image beside its source and control maps, thumbnails and files, and reviewers' marks.
Each reads ``request.app.state`` (``datasets``, ``thumbnails``, ``templates``, ``allow_writes``,
``tokens``); :func:`doge.serve.app.create_app` only assembles them.

Every file answered here is a dataset's file resolved inside that dataset's folders
(:func:`doge.augmentation.readback.contained`): a ``..``, an absolute path or a symlink in a
``file_name`` that points elsewhere is refused, never served.
"""

from __future__ import annotations

import io
import logging
from urllib.parse import parse_qs, urlencode

from PIL.Image import DecompressionBombError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from doge.augmentation.contact import colour, mask_overlay, polygons
from doge.augmentation.curation import mark
from doge.augmentation.readback import OutputFolder, Record
from doge.errors import DogeError, NotFound
from doge.locks import output_lock
from doge.serve.auth import TOKEN_ENV, user_for, writer
from doge.serve.common import status_for
from doge.serve.datasets import STATUSES, Query, ServedDataset
from doge.serve.guard import body_bytes, json_body
from doge.serve.pages import error_page, page_number, render

log = logging.getLogger("doge")

PER_PAGE = 48
MAX_MARKS = 10_000  # ids in one curation request
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}


def _dataset(request: Request) -> ServedDataset:
    name = request.path_params["name"]
    served = request.app.state.datasets.get(name)
    if served is None:
        known = ", ".join(request.app.state.datasets) or "none (start doge serve with --dataset OUT)"
        raise NotFound(f"no dataset {name!r} is served here; served: {known}")
    return served


def _rgb(name: str) -> str:
    r, g, b = colour(name)
    return f"rgb({r},{g},{b})"


def _cell(served: ServedDataset, folder: OutputFolder, record: Record, marks: dict) -> dict:
    """What a grid cell or the image page shows of ``record``: its facts and its labels as SVG shapes."""
    w, h = folder.image_size(record)
    boxes, shapes = [], []
    overlay = record.has_mask
    for ann in record.annotations:
        category = ann.get("category") or ""
        if isinstance(ann.get("segmentation"), dict):
            overlay = True
        for points in polygons(ann):
            shapes.append(
                {"points": " ".join(f"{x:.2f},{y:.2f}" for x, y in points), "category": category, "rgb": _rgb(category)}
            )
        if ann.get("bbox"):
            x, y, bw, bh = ann["bbox"]
            boxes.append({"x": x, "y": y, "w": bw, "h": bh, "category": category, "rgb": _rgb(category)})
    try:
        folder.image_path(record)
        problem = None
    except DogeError as exc:
        problem = str(exc)
    try:
        source = folder.source_path(record)
        has_source = source is not None and source.is_file()
    except DogeError:
        has_source = False
    return {
        "index": record.index,
        "id": record.id,
        "file": record.file,
        "label": record.label,
        "labels": list(record.labels),
        "generated": record.generated,
        "gap": record.gap,
        "weight": record.weight,
        "seed": record.seed,
        "k": record.k,
        "target_score": record.target_score,
        "source_similarity": record.source_similarity,
        "status": served.status(record, marks),
        "mark": marks.get(record.id),
        "w": w,
        "h": h,
        "boxes": boxes,
        "shapes": shapes,
        "overlay": overlay,
        "has_source": has_source,
        "controls": [name for name, _ in folder.control_paths(record)],
        "rgb": _rgb(record.label),
        "problem": problem,
    }


# -- pages -------------------------------------------------------------------------------------


def index(request: Request):
    datasets = request.app.state.datasets
    shown = []
    for name, served in datasets.items():
        try:
            folder = served.folder()
            shown.append(
                {
                    "name": name,
                    "root": str(served.root),
                    "kind": folder.kind,
                    "images": len(folder.records),
                    "generated": sum(r.generated for r in folder.records),
                    "classes": len(folder.classes),
                    "gaps": folder.gaps,
                    "error": None,
                }
            )
        except DogeError as exc:
            shown.append({"name": name, "root": str(served.root), "error": str(exc)})
    return render(request, "datasets.html", datasets=shown)


def _selection(request: Request) -> tuple[ServedDataset, Query, int, OutputFolder, dict, list[Record], int]:
    """What a dataset request asks for: the dataset, its query and page, the folder read back,
    reviewers' marks, the records the query picks, and the page size."""
    served = _dataset(request)
    query = Query.parse(request.query_params)
    page = page_number(request.query_params.get("page"))
    folder, marks = served.folder(), served.marks()
    per_page = getattr(request.app.state, "dataset_per_page", PER_PAGE)
    return served, query, page, folder, marks, served.select(query), per_page


def dataset(request: Request):
    try:
        served, query, page, folder, marks, records, per_page = _selection(request)
    except DogeError as exc:
        return error_page(request, exc)
    pages = max(1, -(-len(records) // per_page))
    page = min(page, pages)
    shown = records[(page - 1) * per_page : page * per_page]
    params = query.params()

    def link(**change) -> str:
        merged = {**params, **{k: v for k, v in change.items() if v is not None}}
        return f"/datasets/{served.name}?" + urlencode(merged)

    return render(
        request,
        "dataset.html",
        name=served.name,
        root=str(served.root),
        kind=folder.kind,
        run=_run_facts(folder),
        total=len(folder.records),
        matching=len(records),
        page=page,
        pages=pages,
        previous=link(page=page - 1) if page > 1 else None,
        next=link(page=page + 1) if page < pages else None,
        cells=[_cell(served, folder, r, marks) for r in shown],
        classes=folder.classes,
        gaps=folder.gaps,
        statuses=STATUSES,
        query=query,
        back=urlencode({**params, "page": page}),
        summary=served.summary(),
        curatable=served.curatable,
        marks=len(marks),
    )


def _run_facts(folder: OutputFolder) -> dict:
    run = folder.run
    found = run.get("curation")
    curation: dict = found if isinstance(found, dict) else {}
    return {
        "format": run.get("format") or folder.kind,
        "src": run.get("src"),
        "gaps": run.get("gaps") or [],
        "weights": run.get("weights") or [],
        "filter": run.get("filter"),
        "rejected_by_people": curation.get("rejected_by_people"),
        "rejected_by_filter": curation.get("rejected_by_filter"),
        "contact_sheets": run.get("contact_sheets") if isinstance(run.get("contact_sheets"), dict) else {},
    }


def image(request: Request):
    try:
        served = _dataset(request)
        folder = served.folder()
        record = served.record(request.path_params["index"])
        cell = _cell(served, folder, record, served.marks())
    except DogeError as exc:
        return error_page(request, exc)
    return render(
        request,
        "dataset_image.html",
        name=served.name,
        cell=cell,
        annotations=record.annotations,
        curatable=served.curatable,
        back=request.query_params.get("back", ""),
    )


# -- files -------------------------------------------------------------------------------------


def _file_response(data: bytes, media_type: str, etag: str | None = None) -> Response:
    headers = {"Cache-Control": "private, max-age=300"}
    if etag:
        headers["ETag"] = f'"{etag}"'
    return Response(data, media_type=media_type, headers=headers)


def _refused(exc: DogeError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=status_for(exc))


async def thumbnail(request: Request):
    state = request.app.state

    def make() -> tuple[bytes, str]:
        served = _dataset(request)
        folder = served.folder()
        return state.thumbnails.get(folder, served.record(request.path_params["index"]))

    try:
        data, sha = await run_in_threadpool(make)
    except DogeError as exc:
        return _refused(exc)
    except (OSError, DecompressionBombError) as exc:  # a bomb reads as not readable, never a 500
        return _refused(NotFound(f"the image is not readable ({getattr(exc, 'strerror', None) or exc})"))
    return _file_response(data, "image/jpeg", sha)


async def overlay(request: Request):
    def make() -> bytes | None:
        served = _dataset(request)
        folder = served.folder()
        layer = mask_overlay(folder, served.record(request.path_params["index"]))
        if layer is None:
            return None
        buffer = io.BytesIO()
        layer.save(buffer, format="PNG")
        return buffer.getvalue()

    try:
        data = await run_in_threadpool(make)
    except DogeError as exc:
        return _refused(exc)
    except (OSError, DecompressionBombError) as exc:  # a bomb reads as not readable, never a 500
        return _refused(NotFound(f"the label image is not readable ({getattr(exc, 'strerror', None) or exc})"))
    if data is None:
        return _refused(NotFound("this image has no mask"))
    return _file_response(data, "image/png")


async def file(request: Request):
    """``/datasets/NAME/files/INDEX/image`` (the image itself), ``/source``, ``/mask`` or ``/control-NAME``."""
    what = request.path_params["what"]

    def read() -> tuple[bytes, str]:
        served = _dataset(request)
        folder = served.folder()
        record = served.record(request.path_params["index"])
        if what == "image":
            suffix = record.file.rsplit(".", 1)[-1].lower()
            return folder.image_bytes(record), _IMAGE_TYPES.get(suffix, "application/octet-stream")
        if what == "mask":  # its own file, or a member of the image's shard: a PNG either way
            data = folder.mask_bytes(record)
            if data is None:
                raise NotFound(f"image {record.index} of {served.name} has no mask here")
            return data, "image/png"
        if what == "source":
            path = folder.source_path(record)
        elif what.startswith("control-"):
            path = dict(folder.control_paths(record)).get(what.removeprefix("control-"))
        else:
            raise NotFound(f"{what[:40]!r}: ask for image, source, mask or control-NAME")
        if path is None or not path.is_file():
            raise NotFound(f"image {record.index} of {served.name} has no {what[:40]} here")
        media = _IMAGE_TYPES.get(path.suffix.lower().lstrip("."))
        if media is None:
            raise DogeError(f"{path.name}: not an image doge serves (png, jpg, webp)")
        return path.read_bytes(), media

    try:
        data, media = await run_in_threadpool(read)
    except DogeError as exc:
        return _refused(exc)
    except (OSError, DecompressionBombError) as exc:  # a bomb reads as not readable, never a 500
        return _refused(NotFound(f"not readable ({getattr(exc, 'strerror', None) or exc})"))
    return _file_response(data, media)


# -- curation ----------------------------------------------------------------------------------


def _apply(served: ServedDataset, changes: dict[str, str | None], user: str) -> dict:
    if not served.curatable:
        raise DogeError(
            f"{served.name} is a render folder: reviewers' marks feed back into doge augment only "
            "(use doge filter --delete on a render folder)"
        )
    if not changes:
        raise DogeError("mark at least one image (tick its box)")
    if len(changes) > MAX_MARKS:
        raise DogeError(f"at most {MAX_MARKS} images in one request")
    folder = served.folder()
    files = {r.id: r.file for r in folder.records}
    unknown = [key for key in changes if key not in files]
    if unknown:
        raise NotFound(f"image {unknown[0][:120]!r} is not in {served.name} (was it rewritten? reload the page)")
    with output_lock(served.root, "doge serve (curation)"):
        marks = mark(served.root, changes, user, files)
    rejected = sum(m["verdict"] == "rejected" for m in marks.values())
    return {"dataset": served.name, "marked": len(changes), "rejected": rejected, "kept": len(marks) - rejected}


def _changes(ids: list[str], verdict: str) -> dict[str, str | None]:
    if verdict not in ("rejected", "kept", "clear"):
        raise DogeError(f"verdict {verdict[:40]!r}: use rejected, kept or clear")
    return {key: None if verdict == "clear" else verdict for key in ids}


async def curate_form(request: Request):
    """The dataset page's form: ticked images, a verdict, the reviewer's token (no script runs on the page)."""
    state = request.app.state
    if not state.allow_writes:
        return error_page(request, DogeError("this doge serve is read-only: start it with --allow-writes"))
    try:
        body = (await body_bytes(request, "tick fewer images at once")).decode("utf-8", "replace")
    except DogeError as exc:
        return error_page(request, exc)
    form = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_MARKS + 10)
    user = user_for(form.get("token", [""])[0], state.tokens or {})
    if user is None:
        needed = f"marking images needs a token from {TOKEN_ENV}: type it into the token field"
        return render(request, "error.html", status=401, message=needed)
    try:
        served = _dataset(request)
        changes = _changes(form.get("id", []), form.get("verdict", [""])[0])
        await run_in_threadpool(_apply, served, changes, user)
        back = parse_qs(form.get("back", [""])[0])
        query = Query.parse({k: v[0] for k, v in back.items()})
        page = page_number(back.get("page", [""])[0])
    except DogeError as exc:
        return error_page(request, exc)
    log.warning("doge serve: %s images of %s marked %s by %s", len(changes), served.name, form["verdict"][0], user)
    return RedirectResponse(f"/datasets/{served.name}?" + urlencode({**query.params(), "page": page}), status_code=303)


# -- JSON API ----------------------------------------------------------------------------------


def api_index(request: Request):
    out = []
    for name, served in request.app.state.datasets.items():
        try:
            folder = served.folder()
            out.append({"name": name, "root": str(served.root), "kind": folder.kind, "images": len(folder.records)})
        except DogeError as exc:
            out.append({"name": name, "root": str(served.root), "error": str(exc)})
    return JSONResponse(out)


def api_dataset(request: Request):
    """The records a query picks, a page at a time (``?page=``), with the per-class summary."""
    try:
        served, _, page, folder, marks, records, per_page = _selection(request)
    except DogeError as exc:
        return _refused(exc)
    shown = records[(page - 1) * per_page : page * per_page]
    return JSONResponse(
        {
            "name": served.name,
            "kind": folder.kind,
            "total": len(folder.records),
            "matching": len(records),
            "page": page,
            "per_page": per_page,
            "records": [_cell(served, folder, r, marks) for r in shown],
            "summary": served.summary(),
        }
    )


async def api_curate(request: Request):
    """``POST /api/datasets/NAME/curation`` ``{"rejected": [ids], "kept": [ids], "clear": [ids]}`` with a bearer token."""
    try:
        user = writer(request)
        body = await json_body(request)
        if not all(
            isinstance(body.get(k, []), list) and all(isinstance(i, str) for i in body.get(k, []))
            for k in ("rejected", "kept", "clear")
        ):
            raise DogeError('send {"rejected": ["doge_id", ...], "kept": [...], "clear": [...]}')
        changes: dict[str, str | None] = {}
        for verdict in ("rejected", "kept", "clear"):
            changes.update(_changes(body.get(verdict, []), verdict))
        served = _dataset(request)
        result = await run_in_threadpool(_apply, served, changes, user)
    except DogeError as exc:
        return _refused(exc)
    log.warning("doge serve: %s images of %s marked by %s", len(changes), served.name, user)
    return JSONResponse(result)
