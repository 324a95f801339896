"""One page of a team's gap library, by name: what ``doge serve``'s front page shows.

A handful of queries whatever the registry's size: the matching names are grouped and paged in
SQL, and only the page's names are looked at further (their latest version, aliases, labels,
evaluations and newest preview).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select, tuple_

from . import labels
from .attachments import PREVIEW
from .evaluations import as_record as evaluation_record
from .models import AliasRow, AttachmentRow, EvaluationRow, GapRow, LabelRow
from .registry import Registry, _gv, _matching, _with_label

MAX_PER_PAGE = 200


def library_page(
    registry: Registry, *, where: dict | None = None, search: str | None = None, page: int = 1, per_page: int = 50
) -> dict:
    """Names with a version matching ``where`` (labels) and ``search`` (as ``Registry.list``),
    sorted, ``per_page`` at a time: for each, its latest matching version (``GapVersion``), how
    many versions match, every alias of the name (alias -> version), the evaluation records of
    its versions and the id and ref of its newest preview."""
    per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    page = max(1, int(page))
    conditions = [GapRow.id.in_(_with_label(k, v)) for k, v in labels.checked_labels(where or {}).items()]
    if search:
        conditions.append(_matching(search))
    grouped = (
        select(GapRow.name, func.max(GapRow.version).label("latest"), func.count().label("versions"))
        .where(*conditions)
        .group_by(GapRow.name)
    )
    with registry._tx() as s:
        total = s.scalar(select(func.count()).select_from(grouped.subquery())) or 0
        page = min(page, max(1, -(-total // per_page)))  # past the end: the last page (and no SQL overflow)
        found = s.execute(grouped.order_by(GapRow.name).limit(per_page).offset((page - 1) * per_page)).all()
        names = [r.name for r in found]
        rows = (
            {
                r.name: r
                for r in s.scalars(
                    select(GapRow).where(tuple_(GapRow.name, GapRow.version).in_([(r.name, r.latest) for r in found]))
                )
            }
            if found
            else {}
        )
        aliases: dict[str, dict[str, int]] = defaultdict(dict)
        labels_of: dict[int, dict[str, str]] = defaultdict(dict)
        evaluations: dict[str, list[dict]] = defaultdict(list)
        previews: dict[str, dict] = {}
        if names:
            q = select(AliasRow.name, AliasRow.alias, GapRow.version).join(GapRow, GapRow.id == AliasRow.version_id)
            for name, alias, version in s.execute(q.where(AliasRow.name.in_(names)).order_by(AliasRow.alias)):
                aliases[name][alias] = version
            ids = [r.id for r in rows.values()]
            for version_id, key, value in s.execute(
                select(LabelRow.version_id, LabelRow.key, LabelRow.value).where(LabelRow.version_id.in_(ids))
            ):
                labels_of[version_id][key] = value
            evaluated = select(EvaluationRow).where(EvaluationRow.name.in_(names)).order_by(EvaluationRow.id)
            for e in s.scalars(evaluated):
                evaluations[e.name].append(evaluation_record(e))
            newest = (
                select(AttachmentRow.id, GapRow.name, GapRow.version)
                .join(GapRow, GapRow.id == AttachmentRow.version_id)
                .where(AttachmentRow.kind == PREVIEW, GapRow.name.in_(names))
                .order_by(GapRow.version.desc(), AttachmentRow.id.desc())
            )
            for attachment_id, name, version in s.execute(newest):
                previews.setdefault(name, {"id": attachment_id, "ref": f"{name}@v{version}"})
    entries = []
    for r in found:
        row = rows[r.name]
        name_aliases = aliases[r.name]
        latest = _gv(row, tuple(a for a, v in name_aliases.items() if v == row.version), labels_of[row.id])
        entries.append(
            {
                "name": r.name,
                "latest": latest,
                "versions": r.versions,
                "aliases": dict(name_aliases),
                "evaluations": evaluations[r.name],
                "preview": previews.get(r.name),
            }
        )
    pages = max(1, -(-total // per_page))
    return {"entries": entries, "total": total, "page": page, "pages": pages, "per_page": per_page}
