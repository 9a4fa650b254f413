"""Short-lived signed URLs for the files under ``/static`` when ``BACKEND_API_KEY`` is set.

A page's ``<img>`` cannot send ``X-API-Key``, so ``/predict`` answers ``overlay_url`` with
``?expires=<unix time>&signature=<hex>``: an HMAC-SHA256 of that one path and expiry, keyed by a
secret derived from the API key. It opens that one file until it expires (``SIGNED_URL_TTL_S``),
and no longer once the key changes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import unquote, urlencode

_PURPOSE = b"anomalia signed /static URL v1"


class UrlSigner:
    def __init__(self, api_key: str, ttl_s: int):
        self._secret = hmac.new(api_key.encode(), _PURPOSE, hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _signature(self, path: str, expires: int) -> str:
        message = f"{unquote(path)}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, *, now: float | None = None) -> str:
        """``path`` plus the query that opens it for ``ttl_s`` seconds from ``now``."""
        expires = int(time.time() if now is None else now) + self.ttl_s
        return f"{path}?{urlencode({'expires': expires, 'signature': self._signature(path, expires)})}"

    def verify(self, path: str, query: Mapping[str, str], *, now: float | None = None) -> bool:
        """Whether ``query`` carries an unexpired signature of this very ``path``."""
        expires, signature = query.get("expires", ""), query.get("signature", "")
        if not expires.isdigit() or len(expires) > 12:
            return False
        if int(expires) < (time.time() if now is None else now):
            return False
        return hmac.compare_digest(signature.encode(), self._signature(path, int(expires)).encode())
