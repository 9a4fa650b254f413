"""The jobs table on its own, on SQLite and on a real PostgreSQL: a finished job never changes again, and a
restart fails only the jobs whose process is gone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from anomalia.store.database import open_engine
from anomalia.store.jobs import JobStore
from anomalia.usecases.errors import NotAllowed
from anomalia.usecases.jobs import INTERRUPTED, JobNotFound, Jobs
from anomalia.usecases.tokens import API_KEY_CALLER, Caller


def test_a_job_runs_then_finishes_once_and_a_late_report_changes_nothing(database_url):
    store = JobStore(open_engine(database_url))
    job = store.create("teach", "tok1", "host-a:1")
    assert (job.state, job.progress, len(job.id)) == ("queued", 0.0, 32)
    assert store.progress(job.id, "embedding", 0.35, "4/8 images embedded")
    running = store.get(job.id)
    assert (running.state, running.stage, running.progress, running.detail) == ("running", "embedding", 0.35,
                                                                                "4/8 images embedded")
    assert store.finish(job.id, {"ok_scores": [0.5, 0.25], "nested": {"a": None}})
    assert not store.fail(job.id, "too late") and not store.progress(job.id, "saving", 0.99, None)
    done = store.get(job.id)
    assert (done.state, done.progress, done.result, done.error, done.token_id) == (
        "done", 1.0, {"ok_scores": [0.5, 0.25], "nested": {"a": None}}, None, "tok1")
    assert done.updated_us >= done.created_us and store.get("0" * 32) is None
    store.engine.dispose()


def test_unfinished_lists_only_this_hosts_queued_and_running_jobs(database_url):
    store = JobStore(open_engine(database_url))
    mine = store.create("teach", None, "host_a:10")
    store.create("infer_batch", None, "hostXa:11")  # "_" is not a wildcard
    store.create("teach", None, "host_a.example:12")
    finished = store.create("predict_batch", None, "host_a:13")
    store.fail(finished.id, "boom")
    assert [job.id for job in store.unfinished("host_a")] == [mine.id]
    store.engine.dispose()


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_start_up_fails_the_jobs_of_dead_processes_of_this_host_only(database_url):
    store = JobStore(open_engine(database_url))
    jobs = Jobs(store, owner=f"host-a:{os.getpid()}")
    dead = store.create("teach", None, f"host-a:{dead_pid()}")
    ours = store.create("teach", None, f"host-a:{os.getpid()}")  # a pid reused by the starting process
    alive = store.create("teach", None, f"host-a:{os.getppid()}")  # a live sibling sharing the database
    elsewhere = store.create("teach", None, "host-b:1")
    assert sorted(jobs.fail_interrupted()) == sorted([dead.id, ours.id])
    assert store.get(dead.id).state == store.get(ours.id).state == "failed"
    assert store.get(dead.id).error == INTERRUPTED
    assert store.get(alive.id).state == store.get(elsewhere.id).state == "queued"
    store.engine.dispose()


def test_a_reader_sees_its_own_tokens_jobs_the_api_key_all_and_anyone_when_authentication_is_off(database_url):
    jobs = Jobs(JobStore(open_engine(database_url)))
    owner, other = Caller("tok1", frozenset({"teach"})), Caller("tok2", frozenset({"teach", "inspect"}))
    job = jobs.create("teach", owner)
    assert jobs.get(job.id, owner).id == jobs.get(job.id, API_KEY_CALLER).id == jobs.get(job.id, None).id == job.id
    for ident, caller in ((job.id, other), ("f" * 32, owner), ("../x", owner), ("A" * 32, None)):
        with pytest.raises(JobNotFound):
            jobs.get(ident, caller)
    made_without_auth = jobs.create("teach", None)
    with pytest.raises(JobNotFound):  # authentication was turned on since: only the API key sees it
        jobs.get(made_without_auth.id, owner)
    assert jobs.get(made_without_auth.id, API_KEY_CALLER).id == made_without_auth.id
    batch = jobs.create("predict_batch", owner)  # the kind's scope is checked on every read
    with pytest.raises(NotAllowed, match="'inspect' scope"):
        jobs.get(batch.id, owner)
    jobs.store.engine.dispose()
