"""serve's write tokens: ``DOGE_SERVE_TOKEN`` parsed, and the user a request's bearer token names."""

from __future__ import annotations

import hmac
import os

from starlette.requests import Request

from doge.errors import DogeError

TOKEN_ENV = "DOGE_SERVE_TOKEN"


def parse_tokens(text: str | None) -> dict[str, str]:
    """``DOGE_SERVE_TOKEN``: ``TOKEN`` or ``USER:TOKEN``, several separated by commas -> {token: user}.

    Strict: a token given twice (to one user or two), an empty user name (``:TOKEN``) or a short
    token is refused, naming the entry, never silently kept for one of them."""
    tokens: dict[str, str] = {}
    for n, item in enumerate((text or "").split(","), 1):
        item = item.strip()
        if not item:
            continue
        user, sep, token = item.rpartition(":")
        if not sep:
            user, token = "token", item
        user, token = user.strip(), token.strip()
        if not user:
            raise DogeError(f"{TOKEN_ENV}: entry {n} has no user name before its ':'; write USER:TOKEN")
        if len(token) < 8:
            raise DogeError(
                f"{TOKEN_ENV}: entry {n} ({user}): a token must be at least 8 characters (write USER:TOKEN, comma-separated)"
            )
        if token in tokens:
            raise DogeError(
                f"{TOKEN_ENV}: entry {n} ({user}) repeats the token of {tokens[token]}; give each user their own token"
            )
        tokens[token] = user
    return tokens


def tokens_from_env() -> dict[str, str]:
    return parse_tokens(os.environ.get(TOKEN_ENV))


class WriteRefused(DogeError):
    """A write this server does not take: it is read-only (403), or the request carries no known token (401)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def writer(request: Request) -> str:
    """The user a JSON write (``POST /api/...``) runs as: its bearer token's. Raises
    :class:`WriteRefused` on a read-only serve or without a known token."""
    state = request.app.state
    if not state.allow_writes:
        raise WriteRefused("this doge serve is read-only: start it with --allow-writes", 403)
    user = user_of(request, state.tokens or {})
    if user is None:
        raise WriteRefused(f"a write needs 'Authorization: Bearer TOKEN' with a token from {TOKEN_ENV}", 401)
    return user


def user_of(request: Request, tokens: dict[str, str]) -> str | None:
    """The user whose token the request's ``Authorization: Bearer TOKEN`` carries, or None."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return None
    return user_for(given, tokens)


def user_for(given: str, tokens: dict[str, str]) -> str | None:
    """The user whose token is ``given`` (a bearer header's, or a page form's token field), or None."""
    given = (given or "").strip()
    if not given:
        return None
    for token, user in tokens.items():
        if hmac.compare_digest(given.encode(), token.encode()):
            return user
    return None
