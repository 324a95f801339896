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
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise DogeError(f"{option} {value:g}: give a finite number")
    return number


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none): for one-line errors."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
