"""Named tokens with scopes, against SQLite and a real PostgreSQL: 401 without or with a bad one, 403 without the
scope, the token id on every record, revocation, and the secret never stored."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import SecretStr
from support.images import png
from support.server import subprocess_env
from support.service import client_for, fit, product_settings

from anomalia.synthetic import good_image

OK_IMAGES = [good_image(seed) for seed in range(4)]


@pytest.fixture
def client(tmp_path, single_model_dir, database_url):
    settings = product_settings(tmp_path, single_model_dir, database_url=SecretStr(database_url))
    with client_for(settings) as test_client:
        yield test_client


def tokens_of(client):
    return client.app.state.runtime.tokens


def predict(client, **headers):
    return client.post("/predict", files={"file": ("p.png", png(good_image(9)), "image/png")}, headers=headers)


def test_without_key_or_tokens_the_api_is_open_and_one_active_token_closes_it(client):
    assert predict(client).status_code == 200
    _, secret = tokens_of(client).create("cam-1", ["inspect"])
    refused = predict(client)
    assert refused.status_code == 401 and "X-API-Key" in refused.json()["detail"]
    assert client.get("/health").status_code == 200  # public stays public
    assert predict(client, **{"X-API-Key": secret}).status_code == 200
    assert predict(client, Authorization=f"Bearer {secret}").status_code == 200


def test_scopes_decide_403_and_the_token_id_is_on_each_record(client):
    tokens = tokens_of(client)
    inspector, inspect_secret = tokens.create("line 2 camera", ["inspect"])
    _, teach_secret = tokens.create("engineer", ["teach"])
    made = predict(client, **{"X-API-Key": inspect_secret})
    assert made.status_code == 200
    record = client.get(f"/records/{made.json()['record_id']}", headers={"X-API-Key": inspect_secret}).json()
    assert record["token_id"] == inspector.id
    files = [("images", (f"ok{i}.png", png(image), "image/png")) for i, image in enumerate(OK_IMAGES)]
    form = {"role_id": "caja", "roi_id": "tapa", "mm_per_px": "0.05"}
    lacking = client.post("/fit_ok", data=form, files=files, headers={"X-API-Key": inspect_secret})
    assert lacking.status_code == 403 and "'teach' scope" in lacking.json()["detail"]
    assert client.post("/fit_ok", data=form, files=files, headers={"X-API-Key": teach_secret}).status_code == 200
    assert predict(client, **{"X-API-Key": teach_secret}).status_code == 403
    assert client.get("/records", headers={"X-API-Key": teach_secret}).status_code == 403


def test_unknown_wrong_and_revoked_tokens_get_the_same_401(client):
    tokens = tokens_of(client)
    token, secret = tokens.create("cam-1", ["inspect"])
    ident = secret.split("_")[1]
    answers = [predict(client, **{"X-API-Key": value}) for value in (
        "ano_000000000000_" + "x" * 43,  # no such id
        f"ano_{ident}_" + "y" * 43,  # the right id, a wrong secret
        "not-a-token", "")]
    assert {a.status_code for a in answers} == {401} and len({a.text for a in answers}) == 1
    tokens.revoke(token.id)
    assert predict(client, **{"X-API-Key": secret}).status_code == 401
    assert predict(client).status_code == 401  # revoking the last token does not open the API
    from anomalia.usecases.tokens import TokenNotFound

    with pytest.raises(TokenNotFound):
        tokens.revoke(token.id)


def test_the_api_key_keeps_every_scope_beside_tokens(tmp_path, single_model_dir, database_url):
    settings = product_settings(tmp_path, single_model_dir, database_url=SecretStr(database_url),
                                backend_api_key=SecretStr("k" * 24))
    with client_for(settings) as client:
        tokens_of(client).create("cam-1", ["inspect"])
        made = predict(client, **{"X-API-Key": "k" * 24})
        assert made.status_code == 200
        record = client.get(f"/records/{made.json()['record_id']}", headers={"Authorization": "Bearer " + "k" * 24})
        assert record.json()["token_id"] == "api_key"
        assert predict(client, **{"X-API-Key": "k" * 23}).status_code == 401


@pytest.mark.parametrize("name,scopes", [("a;b", ["inspect"]), ("ok", []), ("ok", ["root"]), ("x" * 129, ["admin"])])
def test_bad_names_or_scopes_are_refused(client, name, scopes):
    from anomalia.usecases.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        tokens_of(client).create(name, scopes)
    assert tokens_of(client).list() == []


def test_the_cli_creates_lists_and_revokes_and_only_a_hash_is_stored(tmp_path):
    database = tmp_path / "t.db"
    env = subprocess_env(DATABASE_URL=f"sqlite:///{database}")
    run = lambda *args: subprocess.run([sys.executable, "-m", "anomalia.cli", "token", *args], env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    created = run("create", "--name", "line-2", "--scope", "inspect", "--scope", "teach")
    assert created.returncode == 0, created.stderr
    import json

    token = json.loads(created.stdout)
    assert token["scopes"] == ["inspect", "teach"] and token["token"].startswith(f"ano_{token['id']}_")
    secret = token["token"].split("_", 2)[2]
    assert secret.encode() not in database.read_bytes() and token["token"].encode() not in database.read_bytes()
    listed = [json.loads(line) for line in run("list").stdout.splitlines()]
    assert [(t["id"], t["revoked_at"]) for t in listed] == [(token["id"], None)] and "token" not in listed[0]
    assert run("revoke", token["id"]).returncode == 0
    assert json.loads(run("list").stdout)["revoked_at"] is not None
    again = run("revoke", token["id"])
    assert again.returncode == 2 and "no active token" in again.stderr


def test_when_the_database_is_down_credentials_fail_closed_but_the_api_key_still_opens(tmp_path, single_model_dir):
    from anomalia.local_postgres import free_port

    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone"
    settings = product_settings(tmp_path, single_model_dir, database_url=SecretStr(url))
    with client_for(settings) as client:  # no key: whether tokens exist cannot be known, so nothing passes
        refused = client.get("/records")
        assert refused.status_code == 503 and "credentials cannot be checked" in refused.json()["detail"]
        assert client.get("/health").status_code == 200
    keyed = product_settings(tmp_path, single_model_dir, database_url=SecretStr(url),
                             backend_api_key=SecretStr("k" * 24))
    with client_for(keyed) as client:
        assert client.get("/config", headers={"X-API-Key": "k" * 24}).status_code == 200
        assert client.get("/records", headers={"X-API-Key": "k" * 24}).status_code == 503  # the data is down
        assert client.get("/config", headers={"X-API-Key": "ano_x_y"}).status_code == 503  # a token: unknown
