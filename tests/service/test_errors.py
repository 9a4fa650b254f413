"""One error map: every domain error a use case can raise reaches HTTP with its documented status, not a bare 500."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import anomalia
from anomalia.service.errors import STATUS_OF_DOMAIN_ERRORS, ServiceError, status_of

NEVER_ANSWERED = {
    "anomalia.cli.CliError": "the command line's own error: one line on stderr, exit code 2",
    "anomalia.distributed.results.UnfinishedJob": "anomalia batch's refusal to forget a killed job's parts; "
                                                  "no route runs a batch job",
    "anomalia.usecases.artifact_model.MissingModelError": "start-up only: no model at ARTIFACTS_DIR stops the server",
    "anomalia.service.middleware._TooLarge": "BodyLimit's internal signal; BodyLimit answers the 413 itself",
    "anomalia.accuracy.options.OptionError": "the accuracy runner's command line (make accuracy); no route runs it",
    "anomalia.accuracy.reference.ReferenceMismatchError": "the accuracy runner's refusal of another suite's "
                                                          "reference; no route runs it",
    "anomalia.store.database.DatabaseConfigError": "start-up only: a DATABASE_URL the server cannot use stops it",
    "anomalia.store.write_locks.LockHeld": "ProductModels.reserve turns it into Conflict (409)",
    "anomalia.store.records.MalformedCursor": "InspectionRecords.search turns it into InvalidRequest (400)",
    "anomalia.service.auth.Unauthorised": "the credential check answers 401 itself (a WebSocket closes with 4401)",
    "anomalia.service.routes.jobs._Closed": "the job WebSocket's close code and reason (4400/4401/4403/4404/1011)",
}
DOCUMENTED = {  # README and docs/BACKEND.md section 6
    "InvalidIdentifier": 400, "ImageDecodeError": 400, "ImageTooLargeError": 413, "WeightsMismatchError": 409,
    "ModelFormatError": 500, "WeightsUnavailableError": 503, "WeightsFileError": 503, "NotFittedError": 503,
    "InvalidRequest": 400, "ModelNotFound": 404, "Conflict": 409, "NotCalibrated": 428, "ModelUnloadable": 500,
    "ModelUnavailable": 503, "RequestTooLarge": 413, "UploadTooLarge": 413, "StorageReadOnly": 503, "StorageFull": 507,
    "DatabaseUnavailable": 503, "RecordNotFound": 404, "JobNotFound": 404, "NotAllowed": 403,
}


def defined_errors() -> dict[str, type[Exception]]:
    """Every exception class defined anywhere in the package, by dotted name."""
    found = {}
    for info in pkgutil.walk_packages(anomalia.__path__, "anomalia."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Exception) and value.__module__ == info.name:
                found[f"{info.name}.{value.__qualname__}"] = value
    return found


def test_every_domain_error_has_an_http_status():
    errors = defined_errors()
    assert "anomalia.core.detector.WeightsMismatchError" in errors and len(errors) >= 10
    unmapped = [name for name, kind in errors.items()
                if name not in NEVER_ANSWERED and not issubclass(kind, ServiceError)
                and not any(base in STATUS_OF_DOMAIN_ERRORS for base in kind.__mro__)]
    assert unmapped == [], "map these in service/errors.py (or say why no request can meet them)"
    assert set(NEVER_ANSWERED) <= set(errors), "an excused error no longer exists: drop it from NEVER_ANSWERED"


@pytest.mark.parametrize("name, status", sorted(DOCUMENTED.items()))
def test_each_domain_error_gets_its_documented_status(name, status):
    kind = next(kind for full, kind in defined_errors().items() if full.rsplit(".", 1)[1] == name)
    assert status_of(kind("why")) == status


def test_a_subclass_gets_its_parents_status():
    from anomalia.core.image import ImageDecodeError

    class Truncated(ImageDecodeError):
        pass

    assert status_of(Truncated("half a PNG")) == 400
