"""What the inspection routes add to a record: the client's ids and the facts of the request."""

from __future__ import annotations

import time

from fastapi import Request

from anomalia.usecases.limits import MAX_TEXT_ID
from anomalia.usecases.records import RequestFacts

CLIENT_ID_DOC = (f"optional, stored with the inspection record: 1-{MAX_TEXT_ID} letters, digits, spaces and "
                 "_ . : / @ # + -")


def request_facts(request: Request, endpoint: str, filename: str | None, started: float) -> RequestFacts:
    """The endpoint, the request id, the upload's name and the time spent so far (ms)."""
    return RequestFacts(endpoint=endpoint, request_id=getattr(request.state, "request_id", None), filename=filename,
                        duration_ms=round((time.perf_counter() - started) * 1000, 2),
                        token_id=getattr(request.state, "token_id", None))
