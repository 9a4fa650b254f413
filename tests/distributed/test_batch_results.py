"""RESULTS of ``anomalia batch``: parts, resume, and one row per input in the final file."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from anomalia.distributed.results import SCHEMA, ResultsFile, UnfinishedJob, summary


def rows(*items: tuple[str, str | None, str | None]) -> pa.Table:
    """``(path, verdict, error)`` rows, the other columns null."""
    return pa.Table.from_pylist([{"path": path, "verdict": verdict, "error": error,
                                  "score": None if error else 0.5} for path, verdict, error in items], schema=SCHEMA)


@pytest.mark.parametrize("name", ["results.parquet", "results.csv"])
def test_parts_become_one_row_per_path_and_the_newest_wins(tmp_path, name):
    results = ResultsFile(tmp_path / name)
    assert results.start(resume=False) == set()
    results.write_part(rows(("/b.png", "OK", None), ("/a.png", None, "ImageDecodeError: bad")))
    results.write_part(rows(("/a.png", "NG", None)))
    final = results.finalise(resume=False)
    assert final.column("path").to_pylist() == ["/a.png", "/b.png"]
    assert final.column("verdict").to_pylist() == ["NG", "OK"]
    assert not results.parts.exists()
    again = ResultsFile(tmp_path / name)._read_out()
    assert again.schema == SCHEMA and again.column("path").to_pylist() == ["/a.png", "/b.png"]


@pytest.mark.parametrize("name", ["results.parquet", "results.csv"])
def test_resume_knows_the_paths_of_the_parts_and_of_an_earlier_results_file(tmp_path, name):
    first = ResultsFile(tmp_path / name)
    first.write_part(rows(("/a.png", "OK", None)))
    first.finalise(resume=False)
    killed = ResultsFile(tmp_path / name)
    killed.write_part(rows(("/b.png", "NG", None)))
    (killed.parts / ".part-x.parquet.tmp").write_bytes(b"half a part")  # what a kill mid-write leaves
    resumed = ResultsFile(tmp_path / name)
    assert resumed.start(resume=True) == {"/a.png", "/b.png"}
    resumed.write_part(rows(("/c.png", None, "FileNotFoundError: No such file or directory")))
    final = resumed.finalise(resume=True)
    assert final.column("path").to_pylist() == ["/a.png", "/b.png", "/c.png"]
    assert summary(final) == {"images": 3, "ng": 1, "errors": 1}


def test_an_unfinished_job_is_not_forgotten_without_resume(tmp_path):
    results = ResultsFile(tmp_path / "results.parquet")
    results.write_part(rows(("/a.png", "OK", None)))
    with pytest.raises(UnfinishedJob, match="--resume"):
        ResultsFile(tmp_path / "results.parquet").start(resume=False)


def test_a_run_without_resume_replaces_the_earlier_results(tmp_path):
    ResultsFile(tmp_path / "r.parquet").write_part(rows(("/old.png", "OK", None)))
    ResultsFile(tmp_path / "r.parquet").finalise(resume=False)
    fresh = ResultsFile(tmp_path / "r.parquet")
    fresh.write_part(rows(("/new.png", "OK", None)))
    fresh.finalise(resume=False)
    assert pq.read_table(tmp_path / "r.parquet").column("path").to_pylist() == ["/new.png"]


def test_results_are_parquet_or_csv(tmp_path):
    with pytest.raises(ValueError, match=".parquet or .csv"):
        ResultsFile(tmp_path / "results.json")
