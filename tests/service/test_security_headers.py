"""Headers and exposure: nosniff and frame protection on every answer, a Content-Security-Policy on the
page, and with BACKEND_API_KEY set, files under /static only for the key or a short-lived signed URL."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from support.images import png
from support.service import client_for, product_settings

from anomalia.service.signed_urls import UrlSigner
from anomalia.synthetic import good_image

KEY = "s3cret-key"


def static_root(root):
    (root / "static").mkdir(parents=True)
    (root / "static" / "hello.txt").write_text("hello")
    return root


@pytest.fixture(scope="module")
def open_client(single_model_dir, tmp_path_factory):
    root = static_root(tmp_path_factory.mktemp("headers"))
    with client_for(product_settings(root, single_model_dir, max_upload_mb=0.01),
                    raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def keyed(single_model_dir, tmp_path_factory):
    root = static_root(tmp_path_factory.mktemp("headers_keyed"))
    with client_for(product_settings(root, single_model_dir, backend_api_key=KEY)) as client:
        yield client


def predict(client, **headers):
    return client.post("/predict", headers=headers, files={"file": ("p.png", png(good_image(3)), "image/png")})


def test_every_answer_says_nosniff_and_refuses_framing(open_client):
    answers = {
        "health": open_client.get("/health"), "page": open_client.get("/"),
        "static file": open_client.get("/static/hello.txt"), "page asset": open_client.get("/static/ui/ui.js"),
        "missing static": open_client.get("/static/nothing.png"), "unknown path": open_client.get("/nothing"),
        "openapi": open_client.get("/openapi.json"), "422": open_client.post("/calibrate_ng", json={}),
        "404 domain": open_client.post("/calibrate_ng", json={"role_id": "r", "roi_id": "x", "mm_per_px": 1,
                                                              "ok_scores": [1.0], "area_mm2_thr": 1}),
        "413 body limit": predict(open_client), "405": open_client.put("/predict"),
    }
    assert answers["413 body limit"].status_code == 413 and answers["404 domain"].status_code == 404
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        assert response.headers.get("x-frame-options") == "DENY", name
        assert response.headers.get("referrer-policy") == "no-referrer", name


def test_the_page_has_a_content_security_policy_it_can_live_with(open_client):
    page = open_client.get("/")
    policy = dict(part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert policy["img-src"] == "'self' data: blob:"  # the heatmap is a data: URL, the preview a blob:
    assert "unsafe" not in page.headers["content-security-policy"]
    assert not re.search(r"\son[a-z]+\s*=", page.text), "inline event handlers would be blocked by the policy"
    assert "<script>" not in page.text and " style=" not in page.text


def test_with_a_key_stored_images_need_the_key_or_a_signed_url(keyed):
    answer = predict(keyed, **{"X-API-Key": KEY})
    assert answer.status_code == 200
    url = answer.json()["overlay_url"]
    path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
    assert path.startswith("/static/overlays/") and path.endswith("_overlay.png")
    expires = int(query["expires"][0])
    assert time.time() < expires <= time.time() + 900 + 5
    image = keyed.get(url)  # what the page's <img> does: no header, the URL alone
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert keyed.get(path).status_code == 401
    assert keyed.get(path, headers={"X-API-Key": KEY}).status_code == 200
    sibling = path.replace("_overlay.png", "_heat.png")
    assert keyed.get(f"{sibling}?{urlsplit(url).query}").status_code == 401  # a signature opens one file
    assert keyed.get(sibling, headers={"X-API-Key": KEY}).status_code == 200
    forged = url.replace(f"expires={expires}", f"expires={expires + 3600}")
    assert keyed.get(forged).status_code == 401
    expired = UrlSigner(KEY, ttl_s=60).sign(path, now=time.time() - 3600)
    assert keyed.get(expired).status_code == 401
    assert keyed.get(UrlSigner("another-key", ttl_s=60).sign(path)).status_code == 401
    assert keyed.get("/static/hello.txt").status_code == 401  # everything the server keeps in STATIC_DIR
    assert keyed.get("/static/ui/ui.js").status_code == 200  # the page's own code stays public
    assert keyed.get("/").status_code == 200 and keyed.get("/health").status_code == 200
