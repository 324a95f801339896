"""Errors a user can fix: the CLI prints their message as one line, no traceback."""


class DogeError(Exception):
    """A mistake in input or setup, with a message that names the fix."""


class NotFound(DogeError):
    """A ref, model or folder that does not exist."""


class IntegrityError(DogeError):
    """Stored bytes that do not match their recorded digest."""
