"""GET / and the two static mounts."""

from __future__ import annotations

import pytest
from support.service import artifact_client

from anomalia.service.routes import pages


@pytest.fixture
def client(single_model_dir, tmp_path):
    (tmp_path / "static" / "ui").mkdir(parents=True)
    (tmp_path / "static" / "ui" / "shadow.txt").write_text("STATIC_DIR must not shadow /static/ui")
    (tmp_path / "static" / "hello.txt").write_text("hello")
    with artifact_client(single_model_dir, tmp_path) as test_client:
        yield test_client


def test_root_serves_the_upload_page(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.text == (pages.TEMPLATES_DIR / "index.html").read_text(encoding="utf-8")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_root_without_the_template_is_the_seeds_404(client, tmp_path):
    client.app.dependency_overrides[pages.templates_dir] = lambda: tmp_path / "no-templates"
    try:
        response = client.get("/")
    finally:
        client.app.dependency_overrides.clear()
    assert response.status_code == 404
    assert response.json() == {"detail": "templates/index.html no encontrado"}


def test_static_dir_is_served_with_nosniff(client):
    response = client.get("/static/hello.txt")
    assert response.status_code == 200 and response.text == "hello"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_pages_own_assets_win_over_static_dir(client):
    assert client.get("/static/ui/shadow.txt").status_code == 404  # /static/ui is the package's folder


@pytest.mark.parametrize("path", ["/static/../pyproject.toml", "/static/%2e%2e/%2e%2e/etc/passwd",
                                  "/static/overlays/..%2f..%2fetc%2fpasswd"])
def test_static_paths_cannot_climb_out(client, path):
    assert client.get(path).status_code == 404
