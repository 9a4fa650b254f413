"""Named API tokens in the records database: only the sha256 of each secret is kept, never the secret.

A token reads ``ano_<id>_<secret>``: the id finds the row, the secret's hash is compared in
constant time. Secrets are 32 random bytes, so a plain hash cannot be reversed by guessing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, insert, select, update

from anomalia.store.database import ensure_schema, translated_errors
from anomalia.store.records_schema import tokens

PREFIX = "ano_"


@dataclass(frozen=True)
class Token:
    id: str
    name: str
    scopes: tuple[str, ...]
    created_us: int
    revoked_us: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_us is None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token(row) -> Token:
    return Token(id=row.id, name=row.name, scopes=tuple(row.scopes.split(",")), created_us=row.created_us,
                 revoked_us=row.revoked_us)


class TokenStore:
    """The ``tokens`` table, next to the inspection records (same engine, same migrations)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def create(self, name: str, scopes: tuple[str, ...]) -> tuple[Token, str]:
        """A new active token and its full secret text (shown once; only its hash is stored)."""
        ensure_schema(self.engine)
        ident, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = Token(id=ident, name=name, scopes=scopes, created_us=time.time_ns() // 1000)
        with translated_errors("creating a token"), self.engine.begin() as connection:
            connection.execute(insert(tokens).values(id=ident, name=name, scopes=",".join(scopes),
                                                     secret_sha256=_hash(secret), created_us=token.created_us))
        return token, f"{PREFIX}{ident}_{secret}"

    def verify(self, presented: str) -> Token | None:
        """The active token whose secret this is, or None (unknown id, wrong secret, revoked: all alike)."""
        if not presented.startswith(PREFIX) or len(presented) > 128:
            return None
        ident, _, secret = presented.removeprefix(PREFIX).partition("_")
        ensure_schema(self.engine)
        with translated_errors("checking a token"), self.engine.connect() as connection:
            row = connection.execute(select(tokens).where(tokens.c.id == ident)).first()
        expected = row.secret_sha256 if row is not None else _hash("no such token")
        matches = hmac.compare_digest(_hash(secret).encode(), expected.encode())
        if row is None or not matches or row.revoked_us is not None:
            return None
        return _token(row)

    def list(self) -> list[Token]:
        ensure_schema(self.engine)
        with translated_errors("listing tokens"), self.engine.connect() as connection:
            return [_token(row) for row in connection.execute(select(tokens).order_by(tokens.c.created_us))]

    def revoke(self, ident: str) -> bool:
        """Revoke an active token; False when no active token has this id."""
        ensure_schema(self.engine)
        with translated_errors("revoking a token"), self.engine.begin() as connection:
            done = connection.execute(update(tokens).where(tokens.c.id == ident, tokens.c.revoked_us.is_(None))
                                      .values(revoked_us=time.time_ns() // 1000))
        return bool(done.rowcount)

    def any_made(self) -> bool:
        """Whether a token was ever created (revoked ones count: revoking the last token must not open the API)."""
        ensure_schema(self.engine)
        with translated_errors("listing tokens"), self.engine.connect() as connection:
            return connection.execute(select(tokens.c.id).limit(1)).first() is not None
