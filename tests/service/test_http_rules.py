"""Rules every endpoint shares: the API key, X-Request-ID and CORS (README "HTTP API")."""

from __future__ import annotations

import pytest
from support.service import client_for, product_settings
from support.images import png

from anomalia.synthetic import good_image

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed(single_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("keyed")
    (root / "static").mkdir()
    (root / "static" / "hello.txt").write_text("hello")
    with client_for(product_settings(root, single_model_dir, backend_api_key=KEY)) as client:
        yield client


def predict(client, **headers):
    return client.post("/predict", headers=headers, files={"file": ("p.png", png(good_image(3)), "image/png")})


def test_without_the_key_only_health_the_page_and_its_own_files_answer(keyed):
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/").status_code == 200
    assert keyed.get("/static/ui/ui.js").status_code == 200
    assert keyed.get("/static/hello.txt", headers={"X-API-Key": KEY}).text == "hello"
    for response in (predict(keyed), predict(keyed, **{"X-API-Key": KEY + "x"}), predict(keyed, **{"X-API-Key": ""}),
                     keyed.get("/openapi.json"), keyed.get("/docs"), keyed.get("/static/hello.txt"),
                     keyed.post("/infer"), keyed.post("/fit_ok"), keyed.post("/calibrate_ng", json={})):
        assert response.status_code == 401, response.request.url
        assert response.json() == {"detail": "missing or invalid X-API-Key header"}
    assert predict(keyed, **{"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/openapi.json", headers={"X-API-Key": KEY}).status_code == 200


def test_every_answer_carries_a_request_id_and_echoes_a_sane_one(keyed):
    generated = {keyed.get("/health").headers["X-Request-ID"] for _ in range(2)}
    assert len(generated) == 2 and all(len(value) >= 16 for value in generated)
    assert predict(keyed).headers["X-Request-ID"]  # a 401 carries one too
    given = "line-7 part 42/ok"
    assert keyed.get("/health", headers={"X-Request-ID": given}).headers["X-Request-ID"] == given
    longest = "x" * 128
    assert keyed.get("/health", headers={"X-Request-ID": longest}).headers["X-Request-ID"] == longest
    too_long = keyed.get("/health", headers={"X-Request-ID": "x" * 129}).headers["X-Request-ID"]
    assert too_long != "x" * 129 and len(too_long) <= 128
    tab = keyed.get("/health", headers={"X-Request-ID": "a\tb"}).headers["X-Request-ID"]
    assert tab != "a\tb"


def test_cross_origin_calls_are_refused_unless_the_origin_is_listed(single_model_dir, tmp_path):
    preflight = {"Origin": "http://line-1.local", "Access-Control-Request-Method": "POST"}
    with client_for(product_settings(tmp_path / "a", single_model_dir)) as closed:
        assert "access-control-allow-origin" not in closed.get("/health", headers={"Origin": "http://x"}).headers
        assert "access-control-allow-origin" not in closed.options("/predict", headers=preflight).headers
    with client_for(product_settings(tmp_path / "b", single_model_dir, cors_origins=["http://line-1.local"])) as opened:
        allowed = opened.options("/predict", headers=preflight)
        assert allowed.headers["access-control-allow-origin"] == "http://line-1.local"
        other = opened.get("/health", headers={"Origin": "http://elsewhere.local"})
        assert "access-control-allow-origin" not in other.headers
