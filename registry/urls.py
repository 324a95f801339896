"""URLs as a person may see them: see :mod:`doge.urls`, their one home (the base, below the registry,
so that :mod:`doge.storage` hides passwords too without importing the registry)."""

from doge.urls import HIDDEN, hide_password, hide_passwords_in

__all__ = ["HIDDEN", "hide_password", "hide_passwords_in"]
