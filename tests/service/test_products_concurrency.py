"""A fit in progress, a second fit, a failing fit and a killed fit: inspections keep their current version."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from support.service import calibrate, client_for, fit, infer, product_settings

from anomalia.core.detector import PatchCore
from anomalia.store.model_store import STAGING_PREFIX
from anomalia.synthetic import defect_image, good_image

OK_IMAGES = [good_image(seed) for seed in range(8)]


@pytest.fixture
def settings(tmp_path, single_model_dir):
    return product_settings(tmp_path, single_model_dir)


def teach(client, role: str, roi: str) -> str:
    fitted = fit(client, role, roi, OK_IMAGES)
    assert fitted.status_code == 200, fitted.text
    calibrated = calibrate(client, role, roi, fitted.json()["ok_scores"])
    assert calibrated.status_code == 200, calibrated.text
    return calibrated.json()["model_version"]


def files(root) -> dict:
    """Path → (size, inode) of every model and dataset file and link, ignoring folder mtimes (staging comes and
    goes) and the records database (inspections add records)."""
    found = {}
    for folder, _, names in os.walk(root):
        if os.path.relpath(folder, root).split(os.sep)[0] not in ("models", "datasets"):
            continue
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = (os.lstat(path).st_size, os.lstat(path).st_ino,
                                                   os.readlink(path) if os.path.islink(path) else None)
    for link in root.glob("models/*/*"):
        found[str(link.relative_to(root))] = os.readlink(link) if link.is_symlink() else "dir"
    return found


def test_inspections_use_the_current_version_while_a_fit_runs(settings, monkeypatch):
    started, release = threading.Event(), threading.Event()
    original_fit = PatchCore.fit

    def slow_fit(self, images, **kwargs):
        started.set()
        assert release.wait(60)
        return original_fit(self, images, **kwargs)

    with client_for(settings) as client:
        current = teach(client, "line", "cap")
        monkeypatch.setattr(PatchCore, "fit", slow_fit)
        results = {}
        worker = threading.Thread(target=lambda: results.update(fit=fit(client, "line", "cap", OK_IMAGES)))
        worker.start()
        try:
            assert started.wait(30)
            during = infer(client, "line", "cap", defect_image(9, kind="blob")[0])
            assert during.status_code == 200 and during.json()["model_version"] == current
            second = fit(client, "line", "cap", OK_IMAGES[:2])
            assert second.status_code == 409 and "already running" in second.json()["detail"]
            assert calibrate(client, "line", "cap", [0.1]).status_code == 409
            assert worker.is_alive()  # all of the above was answered while the fit was still running
        finally:
            release.set()
            worker.join(60)
        new = results["fit"].json()
        assert results["fit"].status_code == 200 and new["model_version"] != current
        after = infer(client, "line", "cap", good_image(3))
        assert after.status_code == 428  # documented: a new fit serves only once calibrated
        assert calibrate(client, "line", "cap", new["ok_scores"]).status_code == 200
        assert infer(client, "line", "cap", good_image(3)).status_code == 200


def test_a_held_reservation_gives_409_without_touching_the_disk(settings):
    with client_for(settings) as client:
        teach(client, "line", "cap")
        products = client.app.state.runtime.products
        before = files(settings.backend_data_root)
        with products.reserve("line", "cap"):
            assert fit(client, "line", "cap", OK_IMAGES[:2]).status_code == 409
            assert infer(client, "line", "cap", good_image(1)).status_code == 200
        assert files(settings.backend_data_root) == before
        assert fit(client, "line", "other", OK_IMAGES[:2]).status_code == 200  # other rois are not blocked


def test_a_fit_failing_half_way_leaves_the_previous_version_serving(settings, monkeypatch):
    import anomalia.usecases.products as products_module

    real_write = products_module.write_model_files

    def write_then_fail(detector, folder, **kwargs):
        real_write(detector, folder, **kwargs)
        raise OSError("disk full")

    with client_for(settings, raise_server_exceptions=False) as client:
        current = teach(client, "line", "cap")
        before = files(settings.backend_data_root)
        monkeypatch.setattr(products_module, "write_model_files", write_then_fail)
        assert fit(client, "line", "cap", [good_image(seed) for seed in range(50, 54)]).status_code == 500
        assert files(settings.backend_data_root) == before
        assert not list(settings.backend_data_root.glob(f"models/*/.versions/*/{STAGING_PREFIX}*"))
        response = infer(client, "line", "cap", good_image(1))
        assert response.status_code == 200 and response.json()["model_version"] == current


def test_a_killed_fit_leaves_nothing_that_is_loaded(settings):
    with client_for(settings) as client:
        current = teach(client, "line", "cap")
    versions = settings.backend_data_root / "models/line/.versions/cap"
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                  capture_output=True, text=True).stdout)
    staging = versions / f"{STAGING_PREFIX}29990101T000000000000Z-dead00-{dead_pid}"
    staging.mkdir()
    (staging / "embeddings.npy").write_bytes(b"\x93NUMPY half written")
    (staging / "manifest.json").write_text('{"model_version": "half"')
    with client_for(settings) as restarted:
        response = infer(restarted, "line", "cap", good_image(1))
        assert response.status_code == 200 and response.json()["model_version"] == current
        assert restarted.get("/health").json()["rois"] == {"line": ["cap"]}
    assert not staging.exists()
