"""Background teach and batches through the app: 202 and a job id, progress events over the WebSocket in order,
the synchronous answer as the result, the same credentials (another token's job is 404), malformed WebSocket
messages closed with 4400, bad input refused at once without a job, and jobs of a dead process failed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import func, select
from starlette.websockets import WebSocketDisconnect
from support.images import png
from support.service import MM, RECT, client_for, fit, fit_and_calibrate, product_settings

from anomalia.store.database import open_engine
from anomalia.store.jobs import JobStore
from anomalia.store.records_schema import jobs as jobs_table
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.jobs import process_owner

OK = [good_image(seed) for seed in range(5)]
STAGES = ["embedding", "coreset", "holdout", "saving"]
BACKGROUND = {"background": "true"}


@pytest.fixture
def client(tmp_path, single_model_dir):
    with client_for(product_settings(tmp_path, single_model_dir)) as test_client:
        yield test_client


def teach_form(role="caja", roi="tapa", images=OK, **extra):
    data = {"role_id": role, "roi_id": roi, "mm_per_px": str(MM), **extra}
    return {"data": data, "files": [("images", (f"ok_{i}.png", png(image), "image/png"))
                                    for i, image in enumerate(images)]}


def start_teach(client, headers=None, **form) -> str:
    accepted = client.post("/fit_ok", params=BACKGROUND, headers=headers, **teach_form(**form))
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["state"] == "queued" and body["status_url"] == accepted.headers["Location"] == f"/jobs/{body['job_id']}"
    assert body["events_url"] == f"/ws/jobs/{body['job_id']}"
    return body["job_id"]


def events_of(client, job_id, key: str | None = "", query: str = "") -> list[dict]:
    """Every event of the job's WebSocket until its final one (sending ``key`` first unless None)."""
    with client.websocket_connect(f"/ws/jobs/{job_id}{query}") as socket:
        if key is not None:
            socket.send_json({"type": "auth", "key": key})
        events = [socket.receive_json()]
        while events[-1]["type"] == "progress":
            events.append(socket.receive_json())
        with pytest.raises(WebSocketDisconnect) as closed:
            socket.receive_json()
        assert closed.value.code == 1000
    return events


def close_of(client, path: str, *frames, wait: bool = True) -> tuple[int, str]:
    """The close code and reason the server answers after ``frames`` (text, or bytes sent as binary)."""
    with client.websocket_connect(path) as socket:
        for frame in frames:
            if isinstance(frame, bytes):
                socket.send_bytes(frame)
            else:
                socket.send_text(frame)
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                socket.receive_json()
    return closed.value.code, closed.value.reason


def job_rows(client) -> int:
    engine = client.app.state.runtime.records.store.engine
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(jobs_table)).scalar_one()


def test_a_background_teach_streams_its_stages_in_order_and_ends_with_the_synchronous_answer(client):
    job_id = start_teach(client)
    events = events_of(client, job_id)
    progress, final = events[:-1], events[-1]
    assert len(progress) >= 4 and all(event["type"] == "progress" for event in progress), events
    fractions = [event["progress"] for event in progress]
    assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] < 1
    stages = list(dict.fromkeys(event["stage"] for event in progress if event["stage"]))
    assert stages == STAGES, events
    assert any(event["detail"] == "4/4 images embedded" for event in progress), events
    assert final["type"] == "done"
    answer = fit(client, "caja", "otra", OK).json()  # the synchronous contract, for the same images
    assert set(final["result"]) == set(answer)
    for key in set(answer) - {"roi_id", "model_version", "timings_s"}:
        assert final["result"][key] == answer[key], key
    job = client.get(f"/jobs/{job_id}").json()
    assert (job["kind"], job["state"], job["progress"], job["error"]) == ("teach", "done", 1.0, None)
    assert job["result"] == final["result"] and job["created_at"] <= job["updated_at"]
    assert events_of(client, job_id) == [final]  # a late watcher gets the final event at once
    assert client.get("/health").json()["rois"] == {"caja": ["otra", "tapa"]}


def test_the_background_teach_holds_the_products_reservation(client):
    job_id = start_teach(client)
    second = client.post("/fit_ok", **teach_form())
    assert second.status_code == 409 and "already running" in second.json()["detail"]
    assert client.post("/fit_ok", params=BACKGROUND, **teach_form()).status_code == 409
    assert events_of(client, job_id)[-1]["type"] == "done"
    assert job_rows(client) == 1  # the refused one made no job
    assert client.post("/fit_ok", **teach_form()).status_code == 200  # released when the job ended


@pytest.mark.parametrize("change, status", [
    ({"images": OK[:1]}, 400),
    ({"shape": '{"kind":"circle","cx":10,"cy":10,"r":500}'}, 400),
    ({"role": "bad id!"}, 400),
    ({"mm_per_px": "0"}, 422),
])
def test_bad_input_gets_its_4xx_at_once_and_no_job(client, change, status):
    form = teach_form(**{key: value for key, value in change.items() if key != "mm_per_px"})
    form["data"].update({key: value for key, value in change.items() if key == "mm_per_px"})
    refused = client.post("/fit_ok", params=BACKGROUND, **form)
    assert refused.status_code == status, refused.text
    assert job_rows(client) == 0 and client.get("/health").json()["rois"] == {}


def test_unknown_or_malformed_job_ids_are_404(client):
    for ident in ("0" * 32, "nope", "A" * 32, "0" * 33):
        answer = client.get(f"/jobs/{ident}")
        assert answer.status_code == 404 and answer.json()["detail"].startswith("no job with id")
    assert close_of(client, f"/ws/jobs/{'0' * 32}") == (4404, "no such job")


def test_malformed_websocket_messages_close_with_4400_and_change_nothing(client):
    job_id = start_teach(client)
    path = f"/ws/jobs/{job_id}"
    for frame, reason in (("not json", "the message is not JSON"),
                          ('{"type":"cancel"}', 'the only message accepted is {"type":"auth","key":"..."}'),
                          ('["auth"]', 'the only message accepted is {"type":"auth","key":"..."}'),
                          ('{"type":"auth","key":7}', 'the only message accepted is {"type":"auth","key":"..."}'),
                          (b"\x00\x01", 'binary frames are not accepted; send {"type":"auth","key":"..."} as text')):
        assert close_of(client, path, frame) == (4400, reason)
    assert events_of(client, job_id)[-1]["type"] == "done"  # the job went on
    assert job_rows(client) == 1


def test_jobs_need_the_same_credentials_and_another_tokens_job_is_404(client, monkeypatch):
    monkeypatch.setattr("anomalia.service.routes.jobs.AUTH_TIMEOUT_S", 0.3)
    tokens = client.app.state.runtime.tokens
    _, mine = tokens.create("engineer", ["teach"])
    _, theirs = tokens.create("other engineer", ["teach", "inspect"])
    _, inspector = tokens.create("camera", ["inspect"])
    job_id = start_teach(client, headers={"X-API-Key": mine})
    assert client.get(f"/jobs/{job_id}").status_code == 401
    for other in (theirs, inspector):
        hidden = client.get(f"/jobs/{job_id}", headers={"X-API-Key": other})
        assert hidden.status_code == 404 and hidden.json() == {"detail": f"no job with id {job_id!r}"}  # as unknown
    path = f"/ws/jobs/{job_id}"
    assert close_of(client, path) == (4401, "no credential within 0.3 s")
    assert close_of(client, path, json.dumps({"type": "auth", "key": "ano_wrong_key"})) == (
        4401, "missing or invalid credential")
    assert close_of(client, path, json.dumps({"type": "auth", "key": theirs})) == (4404, "no such job")
    assert close_of(client, f"{path}?key={inspector}") == (4404, "no such job")
    assert close_of(client, path, "{") == (4400, "the message is not JSON")
    final = events_of(client, job_id, key=mine)[-1]
    assert final["type"] == "done" and events_of(client, job_id, key=None, query=f"?key={mine}") == [final]
    assert client.get(f"/jobs/{job_id}", headers={"Authorization": f"Bearer {mine}"}).json()["state"] == "done"


def test_background_batches_answer_what_the_synchronous_ones_do(client):
    fit_and_calibrate(client, "r", "ready", [good_image(seed) for seed in range(6)])
    images = [good_image(400), defect_image(401, kind="blob")[0], b"not an image"]
    files = [("images", (f"p{i}.png", data if isinstance(data, bytes) else png(data), "image/png"))
             for i, data in enumerate(images)]
    form = {"role_id": "r", "roi_id": "ready", "mm_per_px": str(MM), "shape": RECT}
    accepted = client.post("/infer/batch", params=BACKGROUND, data=form, files=files)
    assert accepted.status_code == 202, accepted.text
    events = events_of(client, accepted.json()["job_id"])
    assert {event["stage"] for event in events[:-1]} <= {"scoring", "recording"} and events[-1]["type"] == "done"
    result = events[-1]["result"]
    answer = client.post("/infer/batch", data=form, files=files).json()
    assert (result["n_ok"], result["n_failed"]) == (answer["n_ok"], answer["n_failed"]) == (2, 1)
    for mine, theirs in zip(result["results"], answer["results"]):
        assert mine.get("status") == theirs.get("status")
        if mine["ok"]:
            assert mine["result"]["score"] == theirs["result"]["score"]
            assert mine["result"]["record_id"] != theirs["result"]["record_id"]  # each inspection recorded
    job = client.get(f"/jobs/{accepted.json()['job_id']}").json()
    assert job["kind"] == "infer_batch" and job["result"] == result
    uncalibrated = client.post("/infer/batch", params=BACKGROUND, data={**form, "roi_id": "nothing"}, files=files)
    assert uncalibrated.status_code == 404 and job_rows(client) == 1


def test_a_background_predict_batch_is_a_job_of_kind_predict_batch(client):
    files = [("files", (f"p{i}.png", png(good_image(500 + i)), "image/png")) for i in range(3)]
    accepted = client.post("/predict/batch", params=BACKGROUND, files=files)
    assert accepted.status_code == 202
    final = events_of(client, accepted.json()["job_id"])[-1]
    assert final["type"] == "done" and final["result"]["n_ok"] == 3
    assert client.post("/predict/batch", params=BACKGROUND).status_code == 400 and job_rows(client) == 1


def test_a_job_left_running_by_a_dead_process_is_failed_at_start_up(tmp_path, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir)
    store = JobStore(open_engine(settings.records_database_url()))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    host = process_owner().rsplit(":", 1)[0]
    dead = store.create("teach", None, f"{host}:{child.pid}")
    store.progress(dead.id, "embedding", 0.3, "3/8 images embedded")
    elsewhere = store.create("teach", None, "another-host:1")
    with client_for(settings) as client:
        job = client.get(f"/jobs/{dead.id}").json()
        assert (job["state"], job["progress"]) == ("failed", 0.3) and job["error"].startswith("interrupted")
        assert events_of(client, dead.id) == [{"type": "failed", "error": job["error"]}]
        assert client.get(f"/jobs/{elsewhere.id}").json()["state"] == "queued"  # not ours to judge
    store.engine.dispose()


def test_openapi_documents_202_and_the_jobs_answers(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/fit_ok", "/predict/batch", "/infer/batch"):
        assert "202" in paths[path]["post"]["responses"] and "200" in paths[path]["post"]["responses"]
        assert any(parameter["name"] == "background" for parameter in paths[path]["post"]["parameters"])
    assert {"200", "401", "403", "404", "503"} <= set(paths["/jobs/{job_id}"]["get"]["responses"])


def test_a_job_still_running_after_the_shutdown_grace_period_is_failed_as_interrupted(tmp_path, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir, shutdown_grace_s=0)
    with client_for(settings) as client:
        job_id = start_teach(client, images=[good_image(seed) for seed in range(12)])
    store = JobStore(open_engine(settings.records_database_url()))
    stopped = store.get(job_id)
    assert (stopped.state, stopped.error) == ("failed", "interrupted: the server stopped before the job finished")
    assert not (tmp_path / "data" / "models" / "caja" / "tapa").exists()  # the fit stopped before saving
    store.engine.dispose()


def test_a_job_that_ends_within_the_grace_period_is_done(tmp_path, single_model_dir):
    settings = product_settings(tmp_path, single_model_dir, shutdown_grace_s=120)
    with client_for(settings) as client:
        job_id = start_teach(client)
    store = JobStore(open_engine(settings.records_database_url()))
    assert store.get(job_id).state == "done"
    store.engine.dispose()
