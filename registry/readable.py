"""``ReadableRegistry``: what reading a registry takes, whether it is local or a ``doge serve`` over HTTP.

:class:`doge.registry.Registry` (SQLite, PostgreSQL) and :class:`doge.registry.http_remote.HttpRegistry`
both satisfy it; code that only reads (listing, pulling, a gap page) takes a ``ReadableRegistry``,
and mypy checks that both kinds fit it (see the end of this module).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .http_remote import HttpRegistry
    from .registry import GapVersion, Registry


class ReadableRegistry(Protocol):
    url: str

    def close(self) -> None: ...

    def list(self, name: str | None = None, where: dict | None = None, search: str | None = None) -> builtins.list[Any]:
        """Live versions (``GapVersion``), sorted by name then version, filtered as ``Registry.list`` does."""
        ...

    def list_rows(
        self, name: str | None = None, where: dict | None = None, search: str | None = None, limit: int | None = None
    ) -> tuple[builtins.list[Any], int]: ...

    def resolve(self, ref: Any) -> GapVersion: ...

    def evaluations(self, ref: Any) -> builtins.list[dict]: ...

    def attachments(self, ref: Any, kind: str | None = None) -> builtins.list[dict]: ...

    def previews(self, ref: Any) -> builtins.list[dict]: ...

    def read_blob(self, gv: GapVersion) -> bytes:
        """The version's gap file, checked against its sha256."""
        ...

    def read_attachment(self, ref: Any, attachment_id: int) -> tuple[dict, bytes]: ...


if TYPE_CHECKING:

    def _both_kinds_read(local: Registry, remote: HttpRegistry) -> builtins.list[ReadableRegistry]:
        return [local, remote]  # mypy: each satisfies the protocol, or `make lint` fails naming the method
