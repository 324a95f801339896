"""Labels: ``key=value`` pairs on a version (``team=vision``, ``dataset=office-31``)."""

from __future__ import annotations

import re

from doge.errors import DogeError

_KEY_RE = re.compile(r"^[a-z0-9._-]+$")
MAX_KEY = 100
MAX_VALUE = 1000


def validate_key(key: str) -> str:
    if not isinstance(key, str) or not _KEY_RE.match(key) or len(key) > MAX_KEY:
        raise DogeError(
            f"invalid label key {key!r}: use lowercase letters, digits, '.', '_', '-' "
            f"(at most {MAX_KEY}), e.g. team=vision"
        )
    return key


def validate_value(key: str, value: str) -> str:
    if not isinstance(value, str):
        raise DogeError(f"label {key!r}: the value must be text, got {type(value).__name__}")
    if not value:
        raise DogeError(f"label {key!r} has an empty value: give one ({key}=VALUE), or remove the label")
    if len(value) > MAX_VALUE or "\n" in value:
        raise DogeError(f"label {key!r}: the value must be one line of at most {MAX_VALUE} characters")
    return value


def parse_label(text: str) -> tuple[str, str]:
    """``"key=value"`` as a checked (key, value) pair."""
    key, sep, value = text.partition("=")
    if not sep:
        raise DogeError(f"label {text!r} has no '=': write key=value, e.g. team=vision")
    return validate_key(key.strip()), validate_value(key.strip(), value.strip())


def parse_labels(texts) -> dict[str, str]:
    """Several ``key=value`` texts as a dict; a key given twice is a mistake."""
    labels: dict[str, str] = {}
    for text in texts:
        key, value = parse_label(text)
        if key in labels and labels[key] != value:
            raise DogeError(f"label {key!r} is given twice ({labels[key]!r} and {value!r}): keep one")
        labels[key] = value
    return labels


def checked_labels(labels: dict | None) -> dict[str, str]:
    """A Python caller's dict, checked like parsed text."""
    return {validate_key(k): validate_value(k, v) for k, v in dict(labels or {}).items()}
