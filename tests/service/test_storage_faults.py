"""Disk faults on a real file system: a full disk answers 507, a read-only data root 503, both with a
message that says what to do, before any long fit, and leave the data root as it was.

The data root is a small tmpfs (root only; skipped with the reason elsewhere).
"""

from __future__ import annotations

import json
import stat

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs
from support.faults import fill, remount, tmpfs
from support.service import calibrate, client_for, fit, infer, product_settings, snapshot

from anomalia.synthetic import good_image

OK_IMAGES = [good_image(seed) for seed in range(6)]


@pytest.fixture
def disk(tmp_path):
    """A 16 MiB tmpfs mounted at ``tmp_path/data`` (the data root of ``product_settings``)."""
    with tmpfs(tmp_path / "data", 16 * 1024) as mounted:
        yield mounted


@pytest.fixture
def settings(tmp_path, single_model_dir, disk):
    return product_settings(tmp_path, single_model_dir)


def teach_and_calibrate(client) -> str:
    taught = fit(client, "r", "cap", OK_IMAGES)
    assert taught.status_code == 200, taught.text
    calibrated = calibrate(client, "r", "cap", taught.json()["ok_scores"])
    assert calibrated.status_code == 200, calibrated.text
    return calibrated.json()["model_version"]


def contents(root) -> dict[str, tuple]:
    """``snapshot`` without the folders' modification times (a write that was undone still touched them)."""
    return {path: info[:2] + info[3:] if stat.S_ISDIR(info[0]) else info for path, info in snapshot(root).items()}


def events(logs: list[dict]) -> list[str]:
    return [entry["event"] for entry in logs]


def test_a_full_disk_refuses_a_fit_with_507_before_fitting(settings, disk):
    with client_for(settings, raise_server_exceptions=False) as client:
        version = teach_and_calibrate(client)
        fill(disk, leave_bytes=128 * 1024)
        before = snapshot(disk)
        with capture_logs() as logs:
            response = fit(client, "r", "cap", OK_IMAGES)
        assert response.status_code == 507, response.text
        detail = response.json()["detail"]
        assert "BACKEND_DATA_ROOT" in detail and "free" in detail, detail
        assert "fit_ok_started" not in events(logs)  # refused before the fit, not after it
        assert snapshot(disk) == before
        served = infer(client, "r", "cap", good_image(50))
        assert served.status_code == 200 and served.json()["model_version"] == version
        health = client.get("/health").json()
        assert health["storage"]["writable"] is True and health["storage"]["free_bytes"] < 1024 * 1024
        assert any("free" in warning for warning in health["warnings"]), health["warnings"]


def test_a_disk_that_fills_while_saving_a_calibration_is_507_and_leaves_nothing(settings, disk):
    with client_for(settings, raise_server_exceptions=False) as client:
        version = teach_and_calibrate(client)
        scores = json.loads((disk / "models/r/cap/calibration.json").read_text())["ok_scores"]
        filler = fill(disk)
        before = contents(disk)
        response = calibrate(client, "r", "cap", scores)
        assert response.status_code == 507, response.text
        assert "full" in response.json()["detail"] and "BACKEND_DATA_ROOT" in response.json()["detail"]
        assert contents(disk) == before
        unrecorded = infer(client, "r", "cap", good_image(50))  # the record cannot be written: no 200 without it
        assert unrecorded.status_code == 503 and "full" in unrecorded.json()["detail"], unrecorded.text
        filler.unlink()
        assert infer(client, "r", "cap", good_image(50)).json()["model_version"] == version
        assert calibrate(client, "r", "cap", scores).status_code == 200


@pytest.mark.parametrize("database", ["in the data root", "elsewhere"])
def test_a_read_only_data_root_is_a_start_up_warning_then_503_before_fitting(settings, disk, tmp_path, database):
    if database == "elsewhere":
        settings = settings.model_copy(update={"database_url": SecretStr(f"sqlite:///{tmp_path / 'db' / 'a.db'}")})
    with client_for(settings) as client:
        version = teach_and_calibrate(client)
    stale = disk / "models/r/.versions/cap/.staging-20000101T000000000000Z-000000-999999999"
    stale.mkdir()
    (disk / "datasets/r/cap/ok/.leftover.png.0123abcd.tmp").write_bytes(b"half an image")
    remount(disk, read_only=True)
    try:
        before = snapshot(disk)
        with client_for(settings, raise_server_exceptions=False) as client:  # starts on the read-only root
            health = client.get("/health").json()
            assert health["status"] == "ok" and health["rois"] == {"r": ["cap"]}
            assert health["storage"]["writable"] is False
            assert any("read-only" in warning and str(disk) in warning for warning in health["warnings"])
            with capture_logs() as logs:
                response = fit(client, "r", "cap", OK_IMAGES)
            assert response.status_code == 503, response.text
            assert "read-only" in response.json()["detail"] and "BACKEND_DATA_ROOT" in response.json()["detail"]
            assert "fit_ok_started" not in events(logs)
            refused = calibrate(client, "r", "cap", [0.1, 0.2])
            assert refused.status_code == 503 and "read-only" in refused.json()["detail"]
            served = infer(client, "r", "cap", good_image(50))
            if database == "elsewhere":  # an inspection writes only its record (its image is not kept there)
                assert served.status_code == 200 and served.json()["model_version"] == version
                record = client.get(f"/records/{served.json()['record_id']}").json()
                assert record["model_version"] == version and record["image_url"] is None
            else:  # no 200 without its record
                assert served.status_code == 503 and "records database" in served.json()["detail"], served.text
            assert client.get("/health").json()["status"] == "ok"
        assert snapshot(disk) == before
    finally:
        remount(disk, read_only=False)
