"""Named tokens with scopes (``inspect``, ``teach``, ``admin``): create, list, revoke, authenticate.

``BACKEND_API_KEY`` stays an all-scopes key; tokens let each station or tool hold only what it
needs, and name who made each inspection (``token_id`` on its record). Authentication results
are cached for ``cache_s`` seconds, so a revocation takes effect within that time in every process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

from anomalia.store.tokens import Token, TokenStore
from anomalia.usecases.errors import InvalidRequest, RecordNotFound
from anomalia.usecases.limits import check_text_id

SCOPES = ("inspect", "teach", "admin")
"""inspect: inspect, read records, review · teach: teach, calibrate · admin: tokens, configuration."""
ALL_SCOPES = frozenset(SCOPES)


class TokenNotFound(RecordNotFound):
    """No active token has this id."""


def check_scopes(scopes: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(scopes))
    unknown = [scope for scope in chosen if scope not in SCOPES]
    if not chosen or unknown:
        raise InvalidRequest(f"scopes must be one or more of {', '.join(SCOPES)}; got {', '.join(chosen) or 'none'}")
    return chosen


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a token's id and scopes, or the all-scopes API key (``token_id`` "api_key")."""

    token_id: str
    scopes: frozenset[str]


API_KEY_CALLER = Caller("api_key", ALL_SCOPES)


class Tokens:
    def __init__(self, store: TokenStore, cache_s: float = 5.0):
        self.store, self.cache_s = store, cache_s
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._active: tuple[float, bool] | None = None
        self._lock = threading.Lock()

    def create(self, name: str, scopes: tuple[str, ...] | list[str]) -> tuple[Token, str]:
        """A new token; the returned secret text is shown once and never stored."""
        check_text_id("name", name)
        token, secret = self.store.create(name, check_scopes(scopes))
        self._active = None
        return token, secret

    def list(self) -> list[Token]:
        return self.store.list()

    def revoke(self, ident: str) -> None:
        if not (isinstance(ident, str) and ident.isalnum() and len(ident) <= 32) or not self.store.revoke(ident):
            raise TokenNotFound(f"no active token with id {ident!r}")
        with self._lock:
            self._cache.clear()
            self._active = None

    def enforced(self) -> bool:
        """Whether tokens are in use: once one was created, every non-public request needs a credential, even
        after every token is revoked."""
        now = time.monotonic()
        cached = self._active
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        active = self.store.any_made()
        self._active = (now, active)
        return active

    def authenticate(self, presented: str) -> Caller | None:
        """The caller this secret names, or None; the same answer for unknown, wrong and revoked tokens."""
        key = hashlib.sha256(presented.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.cache_s:
            return cached[1]
        token = self.store.verify(presented)
        caller = Caller(token.id, frozenset(token.scopes)) if token is not None else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now, caller)
        return caller
