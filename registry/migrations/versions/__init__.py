"""One module a schema revision; each names the one before it in ``down_revision``."""
