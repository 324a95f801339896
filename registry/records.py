"""One schema per record kind that crosses the registry's edge: version, provenance, label, alias,
evaluation, preview, plot and history entry.

Records that arrive from elsewhere (a bundle, a pull, a push, a ``doge serve`` over HTTP) pass
:func:`check` before anything is stored: types, finite numbers, ranges, required and known keys.
A refusal is one line naming the record and the field. Records read back from a database that
other tools may write pass :func:`damage` instead, which says what is wrong rather than raising,
so that readers show such a record as damaged and ``doge registry check`` lists it.

Each schema is a tree of small validators. A record's own keys are closed (a key this doge does
not know is refused, so a typo or an injected field never passes silently); the objects nested in
it (``transfer``, ``settings``, ``provenance``) check the keys doge reads and accept other finite
JSON, which plugins and newer doges add.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from doge.errors import DogeError
from doge.names import MAX_VERSION, validate_alias, validate_name

MAX_DEPTH = 32  # nesting of any JSON value in a record
MAX_TEXT = 100_000
MAX_ITEMS = 100_000
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")

Check = Callable[[Any, str], None]


class RecordError(DogeError):
    """A record breaks its schema: ``field`` (dotted path) and what is wrong with it."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"field {field!r} {problem}" if field else problem)


def _name(value) -> str:
    return "null" if value is None else type(value).__name__


# -- validators --------------------------------------------------------------------------------


def text(max_len: int = MAX_TEXT) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise RecordError(path, f"must be text, got {_name(value)}")
        if len(value) > max_len:
            raise RecordError(path, f"is {len(value)} characters long; at most {max_len}")

    return check


def integer(lo: int | None = None, hi: int | None = MAX_VERSION) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RecordError(path, f"must be an integer, got {_name(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise RecordError(path, f"must be from {lo} to {hi}, got {value}")

    return check


def number(lo: float | None = None, hi: float | None = None) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise RecordError(path, f"must be a number, got {_name(value)}")
        if not math.isfinite(value):
            raise RecordError(path, f"must be a finite number, got {value}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise RecordError(path, f"must be {_bounds(lo, hi)}, got {value:g}")

    return check


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is None:
        return f"at most {hi:g}"
    return f"at least {lo:g}" if hi is None else f"from {lo:g} to {hi:g}"


def boolean(value, path) -> None:
    if not isinstance(value, bool):
        raise RecordError(path, f"must be true or false, got {_name(value)}")


def one_of(*choices: str) -> Check:
    def check(value: Any, path: str) -> None:
        if value not in choices:
            raise RecordError(path, f"must be one of {', '.join(choices)}, got {value!r}"[:200])

    return check


def sha256(value, path) -> None:
    if not isinstance(value, str) or not _SHA_RE.match(value):
        raise RecordError(path, "must be 64 lowercase hex digits")


def timestamp(value, path) -> None:
    """An ISO 8601 time, as doge writes them (``2026-12-07T23:05:46Z``)."""
    text(64)(value, path)
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(path, f"must be an ISO 8601 time, got {value[:40]!r}") from None


def optional(inner: Check) -> Check:
    def check(value: Any, path: str) -> None:
        if value is not None:
            inner(value, path)

    return check


def either(*checks: Check) -> Check:
    def check(value: Any, path: str) -> None:
        errors = []
        for c in checks:
            try:
                c(value, path)
                return
            except RecordError as e:
                if e.field != path:  # the value had this alternative's shape: its inner fault says most
                    raise
                errors.append(e.problem)
        raise RecordError(path, " or ".join(dict.fromkeys(errors)))

    return check


def list_of(item: Check, max_len: int = MAX_ITEMS) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, list):
            raise RecordError(path, f"must be a list, got {_name(value)}")
        if len(value) > max_len:
            raise RecordError(path, f"holds {len(value)} items; at most {max_len}")
        for i, v in enumerate(value):
            item(v, f"{path}[{i}]")

    return check


def json_value(value, path, depth: int = 0) -> None:
    """Any finite JSON: null, bool, finite numbers, text, lists and objects with text keys."""
    if depth > MAX_DEPTH:
        raise RecordError(path, f"is nested more than {MAX_DEPTH} levels deep")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise RecordError(path, f"must be a finite number, got {value}")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            json_value(v, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordError(path, f"has a key that is not text ({_name(k)})")
            json_value(v, f"{path}.{k}" if path else k, depth + 1)
        return
    raise RecordError(path, f"must be JSON, got {_name(value)}")


def obj(fields: dict[str, Check], required: tuple[str, ...] = (), *, closed: bool = False) -> Check:
    """An object whose ``fields`` are checked when present; ``required`` must be; with ``closed``,
    other keys are refused, else they may hold any finite JSON."""

    def check(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise RecordError(path, f"must be an object, got {_name(value)}")
        for key in required:
            if key not in value:
                raise RecordError(_join(path, key), "is missing")
        for key, v in value.items():
            where = _join(path, key) if isinstance(key, str) else path
            if key in fields:
                fields[key](v, where)
            elif closed:
                raise RecordError(where, "is not a field this doge knows")
            else:
                json_value(v, where, 1)

    return check


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _gap_name(value, path) -> None:
    try:
        validate_name(value)
    except DogeError as e:
        raise RecordError(path, f"is not a gap name: {e}") from None


def _alias(value, path) -> None:
    if not isinstance(value, str):
        raise RecordError(path, f"must be text, got {_name(value)}")
    try:
        validate_alias(value)
    except DogeError as e:
        raise RecordError(path, f"is not an alias: {e}") from None


def _labels(value, path) -> None:
    from .labels import validate_key, validate_value

    if not isinstance(value, dict):
        raise RecordError(path, f"must be an object, got {_name(value)}")
    for k, v in value.items():
        try:
            validate_key(k)
            validate_value(k, v)
        except DogeError as e:
            raise RecordError(_join(path, str(k)[:40]), f"is not a label: {e}") from None


# -- the schemas -------------------------------------------------------------------------------

COUNT = integer(0)
FRACTION = number(0, 1)
RATIO = number(0)
WEIGHT = number(-1e6, 1e6)
COSINE = number(-1, 1)

_side = obj({"folder": text(), "images": COUNT, "digest": text(200), "skipped": COUNT})
_encoder = obj({"plugin": text(200), "model": optional(text(2000)), "dim": optional(integer(1))})

# a Python caller may write its own provenance (``Registry.create``): the keys doge reads are typed,
# each either doge's own object or free text
PROVENANCE = obj(
    {
        "encoder": either(_encoder, text(1000)),
        "estimator": either(obj({"name": text(200), "params": obj({})}), text(200)),
        "source": either(_side, text(4096)),
        "target": either(_side, text(4096)),
        "created_by": text(1000),
        "created_at": timestamp,
        "description": text(),
        "doge_version": text(100),
        "origin": obj({}),
    }
)

_transfer = obj(
    {
        "weights": list_of(WEIGHT, 10_000),
        "accuracy": list_of(FRACTION, 10_000),
        "centroid_ratio": list_of(RATIO, 10_000),
        "best_weight": WEIGHT,
        "accuracy_at_best": FRACTION,
        "score_at_best": number(),
        "centroid_ratio_at_best": RATIO,
        "mean_accuracy": FRACTION,
        "centroid_weight": optional(number()),
        "centroid_ratio_min": optional(RATIO),
        "target_recall": optional(FRACTION),
        "domain_accuracy": optional(FRACTION),
        "held_out": obj({"source": COUNT, "target": COUNT}),
    },
    required=("best_weight", "accuracy_at_best", "centroid_ratio_at_best"),
)
_curve_point = obj({"images": COUNT, "source": COUNT, "target": COUNT, "cosine_mean": COSINE, "cosine_std": RATIO})
_stability = obj(
    {
        "pool": text(100),
        "skipped": text(),
        "draws": COUNT,
        "cosine_mean": optional(COSINE),
        "cosine_std": optional(RATIO),
        "curve": list_of(_curve_point, 1000),
        "enough_cosine": optional(COSINE),
        "images_needed": optional(COUNT),
        "reference": obj({"source": COUNT, "target": COUNT}),
    }
)
_estimator_result = obj(
    {
        "estimator": text(200),
        "error": text(),
        "best_weight": optional(WEIGHT),
        "accuracy_at_best": optional(FRACTION),
        "score_at_best": optional(number()),
        "centroid_ratio_at_best": optional(RATIO),
        "mean_accuracy": optional(FRACTION),
        "accuracy_at_1": optional(FRACTION),
    },
    required=("estimator",),
)
_estimators = obj(
    {"pool": text(100), "skipped": text(), "results": list_of(_estimator_result, 1000), "best": optional(text(200))}
)

EVALUATION = obj(
    {
        "gap": text(1000),
        "gap_sha256": sha256,
        "created_at": timestamp,
        "created_by": text(1000),
        "encoder": _encoder,
        "estimator": optional(text(200)),
        "source": _side,
        "target": _side,
        "overlap": obj({"source": COUNT, "target": COUNT}),
        "transfer": _transfer,
        "stability": _stability,
        "estimators": _estimators,
        "doge_version": text(100),
        "plot": text(4096),
        "evaluation_id": integer(1, 2**63 - 1),
        "stored_at": timestamp,
    },
    required=("transfer",),
    closed=True,
)

_texts = list_of(text(4096), 10_000)
PREVIEW_SETTINGS = obj(
    {
        "gap": text(1000),
        "src": text(4096),
        "sources": _texts,
        "n": integer(1),
        "edit_weight": optional(either(WEIGHT, list_of(WEIGHT, 1000))),
        "steps": optional(integer(1)),
        "size": optional(integer(1)),
        "seed": optional(integer(None, None)),
        "model": optional(text(4096)),
        "controls": _texts,
        "controlnets": _texts,
        "fingerprint": text(200),
        "rendered_at": timestamp,
        "tiny_model": boolean,
    }
)
PLOT_SETTINGS = obj({"evaluation_id": integer(1, 2**63 - 1), "file": text(4096)})


def _attachment(kind: str, settings: Check) -> Check:
    return obj(
        {
            "id": integer(1, 2**63 - 1),
            "ref": text(1000),
            "kind": one_of(kind),
            "sha256": sha256,
            "size": integer(0, None),
            "evaluation_id": optional(integer(1, 2**63 - 1)),
            "created_at": timestamp,
            "created_by": text(1000),
            "settings": settings,
            "member": text(200),  # in a bundle's manifest
            "data": lambda v, p: None,  # the bytes of an incoming copy, checked as a PNG elsewhere
        },
        required=("kind", "sha256"),
        closed=True,
    )


PREVIEW = _attachment("preview", PREVIEW_SETTINGS)
PLOT = _attachment("plot", PLOT_SETTINGS)
_COUNT = optional(integer(0, None))  # nullable counts
DATASET_SETTINGS = obj(  # doge augment's record of a dataset it made with the version
    {
        "out": text(4096),
        "format": text(100),
        "images": _COUNT,
        "generated": _COUNT,
        "classes": _COUNT,
        "rejected_by_people": _COUNT,
        "rejected_by_filter": _COUNT,
    },
    required=("out",),
)
DATASET = _attachment("dataset", DATASET_SETTINGS)
ATTACHMENTS = {"preview": PREVIEW, "plot": PLOT, "dataset": DATASET}

VERSION = obj(
    {
        "name": _gap_name,
        "version": integer(1),
        "ref": text(1000),
        "aliases": list_of(_alias, 1000),
        "sha256": sha256,
        "dim": integer(1),
        "description": text(),
        "created_at": timestamp,
        "created_by": text(1000),
        "provenance": PROVENANCE,
        "labels": _labels,
        # a bundle's manifest entry and serve's /api/gaps/REF carry these too
        "member": text(200),
        "evaluations": list_of(obj({}), 100_000),
        "attachments": list_of(obj({}), 100_000),
        "previews": list_of(obj({}), 100_000),
        "blob_problems": list_of(obj({}), 1000),
    },
    required=("name", "version", "sha256", "dim"),
    closed=True,
)

_ACTIONS = (
    "version-created",
    "version-removed",
    "alias-set",
    "alias-moved",
    "alias-removed",
    "label-set",
    "label-removed",
)
HISTORY = obj(
    {
        "id": integer(1, 2**63 - 1),
        "name": text(1000),
        "version": optional(integer(1)),
        "action": one_of(*_ACTIONS),
        "before": optional(obj({})),
        "after": optional(obj({})),
        "who": text(1000),
        "at": timestamp,
    },
    required=("action",),
    closed=True,
)

SCHEMAS: dict[str, Check] = {
    "version": VERSION,
    "provenance": PROVENANCE,
    "label": _labels,
    "alias": _alias,
    "evaluation": EVALUATION,
    "preview": PREVIEW,
    "plot": PLOT,
    "dataset": DATASET,
    "history": HISTORY,
}


def attachment_kind(record) -> str:
    """The schema an attachment record passes: its kind's (``preview`` when the kind is unknown,
    whose schema then refuses it)."""
    kind = record.get("kind") if isinstance(record, dict) else None
    return kind if isinstance(kind, str) and kind in ATTACHMENTS else "preview"


# -- using them --------------------------------------------------------------------------------


def check(kind: str, record, what: str):
    """``record`` if it passes the ``kind`` schema, else a DogeError: ``WHAT: field 'F' ...``."""
    try:
        SCHEMAS[kind](record, "")
    except RecordError as e:
        raise DogeError(f"{what}: {e}") from None
    except RecursionError:
        raise DogeError(f"{what}: nested too deep") from None
    return record


def damage(kind: str, record) -> str | None:
    """What is wrong with a stored ``record`` of ``kind`` (one line), or None when it passes."""
    try:
        SCHEMAS[kind](record, "")
    except RecordError as e:
        return str(e)
    except RecursionError:
        return "nested too deep"
    return None


def check_incoming(item) -> None:
    """Every record of a copy on its way in (``copying.IncomingVersion``); nothing is stored on refusal."""
    what = item.ref if isinstance(getattr(item, "ref", None), str) else "a copied version"
    _checked(_gap_name, item.name, f"{what}: name")
    _checked(_labels, item.labels, f"{what}: labels")
    for alias in item.aliases:
        _checked(_alias, alias, f"{what}: aliases")
    if isinstance(item.provenance, dict) and isinstance(item.provenance.get("damaged"), str):
        raise DogeError(f"{what}: {item.provenance['damaged']}")
    check("provenance", item.provenance, f"{what}: provenance")
    check_attached(item.evaluations, item.attachments, what)


def check_attached(evaluations, attachments, what: str) -> None:
    """A version's evaluation records and attachment records (a copy's, a bundle entry's)."""
    for i, record in enumerate(evaluations, 1):
        if isinstance(record, dict) and isinstance(record.get("damaged"), str):
            raise DogeError(f"{what}: {record['damaged']}")
        check("evaluation", record, f"{what}: evaluation {i}")
    for i, record in enumerate(attachments, 1):
        kind = attachment_kind(record)
        if isinstance(record, dict) and isinstance(record.get("damaged"), str):
            raise DogeError(f"{what}: {record['damaged']}")
        check(kind, record, f"{what}: {kind} {i}")


def _checked(c: Check, value, what: str) -> None:
    try:
        c(value, "")
    except RecordError as e:
        raise DogeError(f"{what}: {e}") from None


def damage_of_text(kind: str, text) -> str | None:
    """What is wrong with a stored JSON column that should hold a ``kind`` object, or None."""
    import json

    if not isinstance(text, str):
        return f"the stored {kind} is not JSON text"
    try:
        value = json.loads(text or "{}")
    except (ValueError, RecursionError):
        return f"the stored {kind} is not valid JSON"
    if not isinstance(value, dict):
        return f"the stored {kind} is not a JSON object"
    return None


def check_settings(kind: str, settings, what: str) -> None:
    """A preview's or a plot's ``settings`` object, checked before it is stored."""
    schema = {"plot": PLOT_SETTINGS, "dataset": DATASET_SETTINGS}.get(kind, PREVIEW_SETTINGS)
    _checked(schema, settings, f"{what}: settings")


def stored_provenance(text) -> dict:
    """A version's stored provenance column as a dict; ``{"damaged": "what is wrong"}`` when it
    breaks its schema (another tool wrote the database), so readers show it as damaged."""
    import json

    problem = damage_of_text("provenance", text)
    if problem is None:
        value = json.loads(text or "{}")
        problem = damage("provenance", value)
        if problem is None:
            return value
    return {"damaged": f"the stored provenance is damaged: {problem}"}
