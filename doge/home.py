"""Where doge keeps its state: ``DOGE_HOME`` or the platform's user data folder."""

from __future__ import annotations

import os
from pathlib import Path


def doge_home(home: str | os.PathLike | None = None) -> Path:
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get("DOGE_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("doge", appauthor=False))
