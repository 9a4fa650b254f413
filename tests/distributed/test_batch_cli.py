"""``anomalia batch``'s one-line refusals, all before Ray starts."""

from __future__ import annotations

import contextlib
import io
import sys

from anomalia.cli import main
from anomalia.distributed.results import ResultsFile, SCHEMA
from anomalia.synthetic import write_good_images


def run(argv: list) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(arg) for arg in argv])
    return code, err.getvalue()


def test_without_ray_it_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "anomalia.distributed.job", raising=False)
    code, err = run(["batch", tmp_path, tmp_path, "--out", tmp_path / "r.parquet"])
    assert code == 2 and "pip install 'anomalia[ray]'" in err


def test_a_wrong_model_source_or_results_name_is_one_line(single_model_dir, tmp_path):
    write_good_images(tmp_path / "images", 1, size=64)
    cases = [([tmp_path / "nowhere", tmp_path / "images", "--out", tmp_path / "r.parquet"], "neither a model folder"),
             ([tmp_path / "images", tmp_path / "images", "--out", tmp_path / "r.parquet"], "holds no model"),
             ([single_model_dir, tmp_path / "none", "--out", tmp_path / "r.parquet"], "not a folder, a glob"),
             ([single_model_dir, tmp_path / "images", "--out", tmp_path / "r.json"], ".parquet or .csv"),
             ([single_model_dir, tmp_path / "images", "--out", tmp_path / "r.csv", "--batch-size", "0"], "at least 1")]
    for argv, message in cases:
        code, err = run(["batch", *argv])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_leftover_parts_need_resume(single_model_dir, tmp_path):
    write_good_images(tmp_path / "images", 1, size=64)
    ResultsFile(tmp_path / "r.parquet").write_part(SCHEMA.empty_table())
    code, err = run(["batch", single_model_dir, tmp_path / "images", "--out", tmp_path / "r.parquet"])
    assert code == 2 and "add --resume" in err


def test_a_relative_sqlite_records_file_is_made_absolute_for_the_workers(tmp_path, monkeypatch):
    from anomalia.distributed.job import _absolute_sqlite

    monkeypatch.chdir(tmp_path)
    assert _absolute_sqlite("sqlite:///data/records.db") == f"sqlite:///{tmp_path}/data/records.db"
    assert _absolute_sqlite("postgresql+psycopg://user:secret@db/anomalia") == "postgresql+psycopg://user:secret@db/anomalia"
