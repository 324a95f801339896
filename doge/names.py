"""Gap names and refs: ``real->painting``, ``real->painting@v2``, ``real->painting@prod``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from doge.errors import DogeError

_PART = r"[a-z0-9][a-z0-9._-]*"
_NAME_RE = re.compile(rf"^{_PART}(->{_PART})?$")
_ALIAS_RE = re.compile(r"^[a-z][a-z0-9._-]*$")
_VERSION_RE = re.compile(r"^v(\d+)$")

NAME_RULE = "lowercase letters, digits, '.', '_', '-', and at most one '->' between two parts (e.g. 'real->painting')"
LATEST = "latest"
MAX_NAME = 200
MAX_ALIAS = 100
MAX_VERSION = 2**31 - 1  # the registry's integer column, on SQLite and PostgreSQL alike


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid gap name, else raise a DogeError naming the rule."""
    if not isinstance(name, str) or not name:
        raise DogeError(f"a gap name is needed: use {NAME_RULE}")
    if len(name) > MAX_NAME:
        raise DogeError(f"gap name {_short(name)} is {len(name)} characters long; the limit is {MAX_NAME}")
    if name.endswith("-") and not name.endswith("--") and _NAME_RE.match(name + ">x"):
        # 'real->painting' unquoted: the shell sends 'real-' and redirects to 'painting'
        raise DogeError(
            f"gap name {name!r} ends in '-': the shell probably read '>...' as a redirect; "
            f"quote the name, e.g. '{name}>painting'"
        )
    if not _NAME_RE.match(name) or name.endswith("-"):
        raise DogeError(f"invalid gap name {_short(name)}: use {NAME_RULE}, not ending in '-'")
    return name


def validate_alias(alias: str) -> str:
    if alias == LATEST:
        raise DogeError("'latest' is implied (it always names the newest version); pick another alias")
    if len(alias) > MAX_ALIAS:
        raise DogeError(f"alias {_short(alias)} is {len(alias)} characters long; the limit is {MAX_ALIAS}")
    if _VERSION_RE.match(alias) or not _ALIAS_RE.match(alias):
        raise DogeError(
            f"invalid alias {alias!r}: start with a letter, then lowercase letters, digits, "
            "'.', '_', '-'; 'v' followed by digits is reserved for versions"
        )
    return alias


def _short(text: str) -> str:
    """``text`` quoted for a message, cut to a readable length."""
    return repr(text) if len(text) <= 60 else repr(text[:40] + "...")


@dataclass(frozen=True)
class Ref:
    """A parsed reference to one gap version: exactly one of version/alias, or neither (latest)."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@v{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(text: str) -> Ref:
    """Parse ``name``, ``name@v2`` or ``name@alias``; ``name@latest`` is the same as ``name``."""
    if not isinstance(text, str):
        raise DogeError(f"a gap ref is text such as 'real->painting@v2', got {text!r}")
    name, sep, tail = text.strip().rpartition("@")
    if not sep:
        return Ref(validate_name(tail))
    validate_name(name)
    if not tail:
        raise DogeError(f"ref {text!r} ends in '@': add a version (@v2) or an alias (@prod)")
    m = _VERSION_RE.match(tail)
    if m:
        digits = m.group(1).lstrip("0")
        if not digits:
            raise DogeError(f"ref {text!r}: versions start at v1")
        if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
            raise DogeError(f"ref {_short(text)}: no version is that high (the most is v{MAX_VERSION})")
        return Ref(name, version=int(digits))
    if tail == LATEST:
        return Ref(name)
    return Ref(name, alias=validate_alias(tail))


def parse_weighted_ref(text: str) -> tuple[Ref, float]:
    """Parse ``REF`` or ``REF:WEIGHT`` (gap arithmetic in render), e.g. ``day->night:0.5``."""
    ref_text, sep, weight = text.rpartition(":")
    if sep:
        try:
            number = float(weight)
            if not math.isfinite(number):
                raise ValueError(weight)
            return parse_ref(ref_text), number
        except ValueError:
            raise DogeError(f"bad weight in {text!r}: write REF:NUMBER, e.g. 'day->night:0.5'") from None
    return parse_ref(text), 1.0
