"""The audit log: who changed what about a name, when, and what it pointed to before and after."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from doge.clock import iso_utc, who

from . import records
from .models import AuditRow

VERSION_CREATED = "version-created"
VERSION_REMOVED = "version-removed"
ALIAS_SET = "alias-set"
ALIAS_MOVED = "alias-moved"
ALIAS_REMOVED = "alias-removed"
LABEL_SET = "label-set"
LABEL_REMOVED = "label-removed"
PENDING = "doge.audit.pending"  # Session.info key: this transaction's entries


def record(session, name: str, version: int | None, action: str, before=None, after=None) -> None:
    """Add one entry to the log, in the caller's transaction (so it lands with the change or not at all)."""
    row = AuditRow(
        name=name,
        version=version,
        action=action,
        before=_dump(before),
        after=_dump(after),
        who=who(),
        at=datetime.now(timezone.utc),
    )
    session.add(row)
    session.info.setdefault(PENDING, []).append(row)  # the registry fires gap_event once committed


def entry(row: AuditRow) -> dict:
    """One log entry as a JSON-able dict (the keys of ``doge gap history --json``).

    An entry that breaks its schema (another tool wrote the database) comes back with
    ``before``/``after`` null and a ``damaged`` line saying what is wrong."""
    found = {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "action": row.action,
        "before": None,
        "after": None,
        "who": row.who,
        "at": iso_utc(row.at) if row.at is not None else "",
    }
    try:
        found.update(before=_load(row.before), after=_load(row.after))
        problem = records.damage("history", found)
    except (ValueError, RecursionError, TypeError):
        problem = "its before or after is not valid JSON"
    if problem:
        return {**found, "before": None, "after": None, "damaged": f"history entry {row.id} is damaged: {problem}"}
    return found


def _dump(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def _load(text: str | None):
    return None if text is None else json.loads(text)
