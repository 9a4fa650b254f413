"""RESULTS of ``anomalia batch``: parts written as batches finish, resume, and the final file.

Rows are appended as numbered Parquet parts in ``RESULTS.parts/`` (each written to a temporary
name and renamed, so a killed job leaves whole parts only). ``--resume`` skips every path found in
the parts or in an earlier RESULTS; :meth:`ResultsFile.finalise` merges them into RESULTS (Parquet,
or CSV when its name ends in ``.csv``), one row per path, then removes the parts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("path", pa.string()), ("score", pa.float64()), ("threshold", pa.float64()), ("verdict", pa.string()),
    ("regions", pa.string()), ("image_width", pa.int64()), ("image_height", pa.int64()),
    ("model_version", pa.string()), ("weights_fingerprint", pa.string()), ("duration_ms", pa.float64()),
    ("error", pa.string()), ("overlay", pa.string()), ("node_id", pa.string()),
])


class UnfinishedJob(RuntimeError):
    """Parts of an earlier job are there and ``--resume`` was not given."""


class ResultsFile:
    """``out`` (``.parquet`` or ``.csv``) and its parts folder ``out.parts``."""

    def __init__(self, out: Path):
        self.out = Path(out)
        if self.out.suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"--out must end in .parquet or .csv; got {self.out.name}")
        self.parts = self.out.with_name(self.out.name + ".parts")
        self._written = 0

    def start(self, resume: bool) -> set[str]:
        """The paths already done (when resuming); refuses to forget an unfinished job's parts otherwise."""
        if not resume:
            if self._part_files():
                raise UnfinishedJob(f"{self.parts} holds the parts of an unfinished job: add --resume to continue "
                                    "it, or delete that folder to start again")
            return set()
        done = set(self._read_parts().column("path").to_pylist())
        if self.out.is_file():
            done.update(self._read_out().column("path").to_pylist())
        return done

    def write_part(self, table: pa.Table) -> Path:
        """Append ``table`` as one more part, atomically."""
        self.parts.mkdir(parents=True, exist_ok=True)
        self._written += 1
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{self._written:06d}.parquet"
        temporary = self.parts / f".{name}.tmp"
        pq.write_table(table.cast(SCHEMA), temporary)
        return Path(temporary.replace(self.parts / name))

    def finalise(self, resume: bool) -> pa.Table:
        """Write RESULTS sorted by path: the earlier RESULTS (when resuming) and every part, the newest row per
        path kept."""
        tables = [self._read_out()] if resume and self.out.is_file() else []
        tables.append(self._read_parts())
        table = latest_per_path(pa.concat_tables(tables)).sort_by("path")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        if self.out.suffix.lower() == ".csv":
            pa_csv.write_csv(table, temporary)
        else:
            pq.write_table(table, temporary)
        temporary.replace(self.out)
        shutil.rmtree(self.parts, ignore_errors=True)
        return table

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.is_dir() else []

    def _read_parts(self) -> pa.Table:
        tables = [pq.read_table(part).cast(SCHEMA) for part in self._part_files()]
        return pa.concat_tables(tables) if tables else SCHEMA.empty_table()

    def _read_out(self) -> pa.Table:
        if self.out.suffix.lower() == ".csv":
            options = pa_csv.ConvertOptions(column_types=SCHEMA, strings_can_be_null=True)
            return pa_csv.read_csv(self.out, convert_options=options).select(SCHEMA.names).cast(SCHEMA)
        return pq.read_table(self.out).select(SCHEMA.names).cast(SCHEMA)


def latest_per_path(table: pa.Table) -> pa.Table:
    """One row per path: its last row (a part written later wins), in the order those rows were written."""
    last: dict[str, int] = {}
    for index, path in enumerate(table.column("path").to_pylist()):
        last.pop(path, None)
        last[path] = index
    return table.take(pa.array(sorted(last.values()), type=pa.int64()))


def summary(table: pa.Table) -> dict[str, int]:
    """Images, NG verdicts and error rows of ``table``."""
    verdicts = table.column("verdict").to_pylist()
    return {"images": table.num_rows, "ng": verdicts.count("NG"),
            "errors": table.num_rows - table.column("error").null_count}
