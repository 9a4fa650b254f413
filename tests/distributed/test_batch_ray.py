"""``anomalia batch`` on real Ray: an embedded local Ray, a SIGKILL mid-job then ``--resume``, and a two-node
cluster on this machine. Every Ray process a test starts is stopped by its mark (``support/ray_cluster.py``)."""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
import sqlalchemy
from support.images import png
from support.ray_cluster import sandbox, two_node_cluster

from anomalia.cli import main
from anomalia.local_ray import RaySandbox
from anomalia.synthetic import defect_image, good_image

pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # Ray starts in seconds, and workers import torch

CLI = [sys.executable, "-m", "anomalia.cli", "batch"]


def write_archive(folder: Path, n_good: int, n_defect: int = 0, broken: bool = False) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    images = [good_image(400 + i) for i in range(n_good)] + [defect_image(500 + i, kind="scratch")[0]
                                                             for i in range(n_defect)]
    for i, image in enumerate(images):
        (folder / ("sub" if i % 2 else ".") / f"{i:04d}.png").parent.mkdir(exist_ok=True)
        (folder / ("sub" if i % 2 else ".") / f"{i:04d}.png").write_bytes(png(image))
    if broken:
        (folder / "broken.png").write_bytes(b"not an image at all")
    return sorted(str(p) for p in folder.rglob("*.png"))


def batch(args: list, ray: RaySandbox, timeout: float = 400) -> dict:
    done = subprocess.run([*CLI, *map(str, args)], env=ray.env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "anomalia batch:" in done.stderr and "images/s" in done.stderr  # the summary line
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_scores_equal_anomalia_predict_with_one_row_per_input(single_model_dir, tmp_path):
    inputs = write_archive(tmp_path / "archive", n_good=5, n_defect=2, broken=True)
    url = f"sqlite:///{tmp_path / 'records.db'}"
    with sandbox() as ray:
        figures = batch([single_model_dir, tmp_path / "archive", "--out", tmp_path / "results.parquet", "--ray", "local",
                         "--batch-size", "3", "--records", url], ray)
        deadline = time.monotonic() + 15
        while ray.pids() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray.pids() == []  # the embedded Ray ended with the job
    table = pq.read_table(tmp_path / "results.parquet")
    rows = {row["path"]: row for row in table.to_pylist()}
    assert sorted(rows) == inputs and table.num_rows == len(inputs)
    assert figures["images"] == len(inputs) and figures["errors"] == 1 and figures["ng"] == 2
    out = io.StringIO()
    good = [path for path in inputs if not path.endswith("broken.png")]
    with contextlib.redirect_stdout(out):
        assert main(["predict", str(single_model_dir), *good, "--device", "cpu"]) == 0
    for line in map(json.loads, out.getvalue().splitlines()):
        row = rows[line["path"]]
        assert abs(row["score"] - line["score"]) <= 1e-5 and row["threshold"] == line["threshold"]
        assert row["verdict"] == ("NG" if line["is_anomaly"] else "OK") and row["error"] is None
        regions = json.loads(row["regions"])
        assert (len(regions) > 0) == line["is_anomaly"] and all("polygon" in region for region in regions)
    assert rows[str(tmp_path / "archive" / "broken.png")]["error"].startswith("ImageDecodeError")
    with sqlalchemy.create_engine(url).connect() as connection:
        assert connection.execute(sqlalchemy.text("select count(*) from inspections where endpoint='batch'")
                                  ).scalar() == len(good)


def test_a_job_killed_mid_way_resumes_and_ends_with_each_input_once(single_model_dir, tmp_path):
    inputs = write_archive(tmp_path / "archive", n_good=60)
    out = tmp_path / "results.csv"
    parts = tmp_path / "results.csv.parts"
    with sandbox() as ray:
        job = subprocess.Popen([*CLI, str(single_model_dir), str(tmp_path / "archive"), "--out", str(out), "--ray",
                                "local", "--batch-size", "2"], env=ray.env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while len(list(parts.glob("part-*.parquet"))) < 3 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.poll() is None, "the job ended before it could be killed"
        job.send_signal(signal.SIGKILL)
        job.wait(timeout=30)
        time.sleep(2)  # Ray's processes share the driver's fate
        kept = len({row for part in parts.glob("part-*.parquet") for row in pq.read_table(part).column("path")
                    .to_pylist()})
        assert 6 <= kept < len(inputs) and not out.exists()
        figures = batch([single_model_dir, tmp_path / "archive", "--out", out, "--ray", "auto", "--batch-size", "4",
                         "--resume"], ray)  # no cluster in this sandbox: auto starts an embedded Ray
    assert figures["skipped"] >= kept and figures["skipped"] + figures["images"] == len(inputs)
    paths = pa_csv.read_csv(out).column("path").to_pylist()
    assert sorted(paths) == inputs and len(paths) == len(set(paths))  # each input exactly once
    assert not parts.exists()
    with sandbox() as ray:
        again = batch([single_model_dir, tmp_path / "archive", "--out", out, "--resume"], ray)
    assert (again["images"], again["skipped"], again["rows"]) == (0, len(inputs), len(inputs))  # no Ray needed


def test_a_two_node_cluster_shares_the_job(single_model_dir, tmp_path):
    inputs = write_archive(tmp_path / "archive", n_good=24)
    with two_node_cluster() as cluster:
        figures = batch([single_model_dir, tmp_path / "archive", "--out", tmp_path / "results.parquet", "--ray",
                         cluster.address, "--batch-size", "2"], cluster)
    table = pq.read_table(tmp_path / "results.parquet")
    assert sorted(table.column("path").to_pylist()) == inputs and figures["errors"] == 0
    assert len(set(table.column("node_id").to_pylist())) == 2  # both nodes scored
