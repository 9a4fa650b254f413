"""What can go wrong in a use case, in domain words; each front end decides how to report it.

The HTTP adapter maps every class to a status code in one table (``service/errors.py``);
the CLI prints the message on one line.
"""

from __future__ import annotations


class UseCaseError(Exception):
    """An expected failure; the message is written for the person who made the request."""


class InvalidRequest(UseCaseError, ValueError):
    """Bad identifiers, scale, shape, images or scores: nothing was read or written."""


class ModelNotFound(UseCaseError, LookupError):
    """No model has been taught for this role/roi."""


class RecordNotFound(UseCaseError, LookupError):
    """No inspection record has this id."""


class Conflict(UseCaseError):
    """The request contradicts the current state: a write already running, another scale or version."""


class NotCalibrated(UseCaseError):
    """The model exists but has no threshold yet; calibrate it first."""


class ModelUnavailable(UseCaseError):
    """Nothing can score right now: no model is loaded, or its backbone weights are not available."""


class ModelUnloadable(UseCaseError):
    """A model folder on disk cannot be read (damaged or written by an incompatible version)."""


class RequestTooLarge(UseCaseError):
    """The request's images hold more pixels in all than a request may decode (``MAX_REQUEST_PIXELS``)."""


class UploadTooLarge(UseCaseError):
    """One uploaded file is over ``MAX_UPLOAD_MB`` (in a batch: that file only)."""


class StorageFull(UseCaseError):
    """The data root's disk has no room for what the request must write; nothing was written."""


class StorageReadOnly(UseCaseError):
    """The data root cannot be written (read-only mount or permissions); inspections still work."""


class NotAllowed(UseCaseError):
    """The caller is known but its credential lacks the scope this needs."""
