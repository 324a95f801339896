"""Errors a user can fix: the CLI prints their message as one line, no traceback."""


class DogeError(Exception):
    """A mistake in input or setup, with a message that names the fix."""


class NotFound(DogeError):
    """A ref, model or folder that does not exist."""


class IntegrityError(DogeError):
    """Stored bytes that do not match their recorded digest."""


def finite(value, option: str) -> float:
    """``value`` as a float, or a DogeError naming ``option`` for NaN or infinity (which click's FLOAT and
    Python's ``float()`` accept, and which turn every generated image black)."""
    if isinstance(value, bool):
        raise DogeError(f"{option} {value!r}: give a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DogeError(f"{option} {value!r}: give a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise DogeError(f"{option} {value:g}: give a finite number")
    return number


def whole(value, option: str, least: int = 0) -> int:
    """``value`` as an int (numpy's integers too), or a DogeError naming ``option`` for a float, text,
    a bool or a number under ``least``."""
    import operator

    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < least:
        raise DogeError(f"{option} {value!r}: use a whole number of at least {least}")
    return number


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
