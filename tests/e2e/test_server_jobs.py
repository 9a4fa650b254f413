"""Background jobs against a real ``anomalia serve``: 202 then progress over a real WebSocket, the job going
on after its watcher leaves, a kill -9 mid-job leaving it ``failed`` (interrupted) after the restart, tokens
from ``anomalia token create`` (another token's job is 404), malformed WebSocket messages, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import httpx
import pytest
from sqlalchemy import func, select
from support.images import png
from support.server import ANOMALIA, Server, server_env
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from anomalia.store.database import default_url, open_engine
from anomalia.store.records_schema import jobs as jobs_table
from anomalia.synthetic import good_image

pytestmark = pytest.mark.e2e

API_KEY = "clave-jobs-3c1d"
MM = "0.05"


@pytest.fixture(scope="module")
def server(tmp_path_factory, single_model_dir):
    root = tmp_path_factory.mktemp("jobs_server")
    running = Server(root, server_env(root, single_model_dir, BACKEND_API_KEY=API_KEY),
                     headers={"X-API-Key": API_KEY}).start()
    yield running
    running.stop()


def token(server, name: str, *scopes: str) -> str:
    command = [str(ANOMALIA), "token", "create", "--name", name, *[f"--scope={scope}" for scope in scopes]]
    made = subprocess.run(command, env=server.env, cwd=server.root, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout)["token"]


def teach_parts(n: int, seed: int = 0) -> list:
    return [("images", (f"ok_{i}.png", png(good_image(seed + i)), "image/png")) for i in range(n)]


def start_teach(server, roi: str, n: int = 5, key: str = API_KEY) -> str:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        accepted = client.post("/fit_ok", params={"background": "true"}, headers={"X-API-Key": key},
                               data={"role_id": "linea", "roi_id": roi, "mm_per_px": MM}, files=teach_parts(n))
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["job_id"]


def ws_url(server, job_id: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/jobs/{job_id}"


def events(server, job_id: str, key: str = API_KEY) -> list[dict]:
    with connect(ws_url(server, job_id), open_timeout=30) as socket:
        socket.send(json.dumps({"type": "auth", "key": key}))
        seen = [json.loads(socket.recv(timeout=300))]
        while seen[-1]["type"] == "progress":
            seen.append(json.loads(socket.recv(timeout=300)))
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    return seen


def close_of(server, path: str, *frames) -> tuple[int, str]:
    with connect(f"ws://127.0.0.1:{server.port}{path}", open_timeout=30) as socket:
        for frame in frames:
            socket.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=30)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def job(server, job_id: str, key: str = API_KEY) -> httpx.Response:
    return httpx.get(f"{server.url}/jobs/{job_id}", headers={"X-API-Key": key}, timeout=30)


def wait_for(server, job_id: str, states: tuple[str, ...], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = job(server, job_id).json()
        if answer["state"] in states:
            return answer
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never reached {states}")


def job_rows(server) -> int:
    engine = open_engine(default_url(server.root / "data"))
    try:
        with engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(jobs_table)).scalar_one()
    finally:
        engine.dispose()


def test_a_background_teach_streams_its_stages_and_ends_with_the_synchronous_answer(server):
    job_id = start_teach(server, "fondo")
    seen = events(server, job_id)
    assert [event["type"] for event in seen[:-1]] == ["progress"] * (len(seen) - 1) and len(seen) >= 5, seen
    assert list(dict.fromkeys(event["stage"] for event in seen[:-1])) == ["embedding", "coreset", "holdout", "saving"]
    assert [event["progress"] for event in seen[:-1]] == sorted(event["progress"] for event in seen[:-1])
    done = seen[-1]
    assert done["type"] == "done"
    with server.client() as client:
        answer = client.post("/fit_ok", data={"role_id": "linea", "roi_id": "directo", "mm_per_px": MM},
                             files=teach_parts(5)).json()
    for key in set(answer) - {"roi_id", "model_version", "timings_s"}:
        assert done["result"][key] == answer[key], key
    assert set(done["result"]) == set(answer)
    assert job(server, job_id).json()["result"] == done["result"]
    assert events(server, job_id) == [done]  # connecting after the end: the final event at once


def test_the_job_goes_on_when_its_watcher_disconnects(server):
    job_id = start_teach(server, "suelto", n=16)
    with connect(ws_url(server, job_id), open_timeout=30) as socket:
        socket.send(json.dumps({"type": "auth", "key": API_KEY}))
        assert json.loads(socket.recv(timeout=60))["type"] == "progress"
    finished = wait_for(server, job_id, ("done", "failed"))
    assert finished["state"] == "done" and finished["result"]["n_images"] == 16


def test_a_kill_during_a_job_leaves_it_failed_as_interrupted_after_the_restart(server):
    job_id = start_teach(server, "matado", n=32)
    assert wait_for(server, job_id, ("running", "done"))["state"] == "running"
    server.stop(signal.SIGKILL)
    server.start()
    interrupted = job(server, job_id).json()
    assert interrupted["state"] == "failed" and interrupted["error"].startswith("interrupted"), interrupted
    assert events(server, job_id) == [{"type": "failed", "error": interrupted["error"]}]
    assert "matado" not in httpx.get(f"{server.url}/health", timeout=30).json()["rois"].get("linea", [])


def test_another_tokens_job_is_404_and_the_socket_needs_the_same_credential(server):
    mine, theirs = token(server, "teacher", "teach"), token(server, "other", "teach", "inspect")
    job_id = start_teach(server, "ajeno", key=mine)
    assert job(server, job_id, key=theirs).status_code == 404
    assert job(server, "0" * 32, key=theirs).status_code == 404
    assert httpx.get(f"{server.url}/jobs/{job_id}", timeout=30).status_code == 401
    path = f"/ws/jobs/{job_id}"
    assert close_of(server, path, json.dumps({"type": "auth", "key": theirs})) == (4404, "no such job")
    assert close_of(server, path, json.dumps({"type": "auth", "key": "wrong"})) == (4401, "missing or invalid credential")
    assert events(server, job_id, key=mine)[-1]["type"] == "done"
    assert job(server, job_id, key=mine).json()["state"] == "done"
    assert job(server, job_id).json()["state"] == "done"  # the API key sees every job


def test_malformed_websocket_messages_close_with_4400(server):
    job_id = start_teach(server, "raro")
    path = f"/ws/jobs/{job_id}"
    assert close_of(server, path, "{not json") == (4400, "the message is not JSON")
    assert close_of(server, path, '{"type":"subscribe"}')[0] == 4400
    assert close_of(server, path, b"\x00")[0] == 4400
    assert close_of(server, f"/ws/jobs/{'0' * 32}", json.dumps({"type": "auth", "key": API_KEY})) == (
        4404, "no such job")
    assert wait_for(server, job_id, ("done", "failed"))["state"] == "done"  # nothing changed for the job


def test_bad_input_gets_its_4xx_at_once_and_creates_no_job(server):
    before = job_rows(server)
    with server.client() as client:
        one = client.post("/fit_ok", params={"background": "true"},
                          data={"role_id": "linea", "roi_id": "malo", "mm_per_px": MM}, files=teach_parts(1))
        assert one.status_code == 400 and "at least 2" in one.json()["detail"]
        assert client.post("/predict/batch", params={"background": "true"}).status_code == 400
        text = client.post("/fit_ok", params={"background": "true"}, data={"role_id": "linea", "roi_id": "malo",
                           "mm_per_px": MM}, files=[("images", ("a.png", b"text", "image/png"))] * 2)
        assert text.status_code == 400
    assert job_rows(server) == before
