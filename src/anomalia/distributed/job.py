"""``anomalia batch`` on Ray: the only module that imports Ray.

Ray Data reads the path list, reads the files in parallel tasks and scores them with
``map_batches`` on an actor pool, one loaded :class:`~anomalia.distributed.scorer.Scorer` per actor
(one GPU per actor when the cluster has GPUs, else two CPU threads per actor). The driver streams
the scored rows back and writes them as parts (``results.py``) while the job runs, so a killed job
keeps what it finished and ``--resume`` goes on from there.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
import structlog

from anomalia.distributed.results import SCHEMA, ResultsFile, summary
from anomalia.distributed.reading import input_files, read_block
from anomalia.distributed.scorer import Scorer, ScorerOptions, check_model
from anomalia.distributed.sources import list_inputs, parse_model

ACTOR_THREADS = 2
"""Torch threads of a CPU actor: one actor per two CPUs of the cluster."""
READ_CPUS = 0.25
"""Reading files is I/O: the read tasks fit beside the actors on a small node."""
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 ** 2
"""An embedded Ray's object store: it only holds the encoded files in flight."""


@dataclass(frozen=True)
class BatchJob:
    """``anomalia batch``'s arguments, parsed."""

    model: str
    source: str
    out: Path
    ray_address: str = "auto"
    batch_size: int = 8
    save_vis: Path | None = None
    records_url: str | None = None
    resume: bool = False
    device: str = "auto"


def run(job: BatchJob, progress: Callable[[int], None] | None = None,
        total: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Score every input not already in RESULTS, write RESULTS, return the summary figures."""
    started = time.perf_counter()
    if job.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1; got {job.batch_size}")
    spec = parse_model(job.model)
    check_model(spec)
    results = ResultsFile(job.out)
    inputs = list_inputs(job.source)
    done = results.start(job.resume)
    todo = [path for path in inputs if path not in done]
    if total is not None:
        total(len(todo))
    records_url = _absolute_sqlite(job.records_url) if job.records_url else None
    if records_url:
        _upgrade_records(records_url)
    options = ScorerOptions(model=spec, device=job.device, save_vis=job.save_vis.absolute() if job.save_vis else None,
                            records_url=records_url, job_id=f"batch-{uuid.uuid4().hex[:12]}")
    figures: dict[str, int] = summary(SCHEMA.empty_table())
    steady = None
    if todo:
        _connect(job.ray_address)
        try:
            figures, steady = _score(todo, options, job.batch_size, results, progress)
        finally:
            ray.shutdown()
    final = results.finalise(job.resume)
    elapsed = time.perf_counter() - started
    return {**figures, "skipped": len(inputs) - len(todo), "rows": final.num_rows, "seconds": round(elapsed, 2),
            "images_per_s": round(figures["images"] / elapsed, 2) if elapsed else None,
            "steady_images_per_s": round(steady, 2) if steady else None,
            "results": str(job.out)}


def _absolute_sqlite(url: str) -> str:
    """A relative SQLite file made absolute: Ray's workers do not run in the driver's folder."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).is_absolute():
        return parsed.set(database=str(Path(parsed.database).absolute())).render_as_string(hide_password=False)
    return url


def _upgrade_records(url: str) -> None:
    """The records schema at this version's head, once, before the actors write (as ``anomalia db upgrade``)."""
    from anomalia.store.database import open_engine, upgrade

    engine = open_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def _connect(address: str) -> None:
    """``auto``: the running cluster, else an embedded one; ``local``: always a fresh embedded one; else join."""
    quiet: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": True}
    if address not in ("auto", "local"):
        ray.init(address=address, **quiet)
        return
    if address == "auto":
        try:
            ray.init(address="auto", **quiet)
            return
        except ConnectionError:
            pass
    ray.init(address="local", num_cpus=os.cpu_count() or 1, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)


def _score(todo: list[str], options: ScorerOptions, batch_size: int, results: ResultsFile,
           progress: Callable[[int], None] | None) -> tuple[dict[str, int], float | None]:
    """Run the pipeline; write each scored block as a part as soon as it reaches the driver. Returns the
    images, NG and errors scored, and the images/s after the first block (start-up left out)."""
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its start and finish lines; the CLI prints a summary
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows one bar (tqdm) over the rows
    context.print_on_execution_start = False
    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if gpus:
        placement: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1}
        actors, threads = gpus, None
    else:
        placement = {"num_cpus": 1, "ray_remote_args_fn": _spread}
        actors, threads = max(1, cpus // ACTOR_THREADS), ACTOR_THREADS
    paths = ray.data.from_items([{"path": path} for path in todo])
    read = paths.map_batches(read_block, batch_size=batch_size, batch_format="pyarrow", num_cpus=READ_CPUS)
    scored = read.map_batches(RayScorer, batch_size=batch_size, batch_format="pyarrow",
                              fn_constructor_kwargs={"options": options, "threads": threads},
                              compute=ray.data.ActorPoolStrategy(size=min(actors, len(todo))), **placement)
    counts = {"images": 0, "ng": 0, "errors": 0}
    first: tuple[float, int] | None = None  # when the first block arrived, and its rows (start-up ends there)
    for batch in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        block = pa.table(batch)
        results.write_part(block)
        counts = {key: counts[key] + value for key, value in summary(block).items()}
        first = first or (time.perf_counter(), block.num_rows)
        if progress is not None:
            progress(block.num_rows)
    steady = None if first is None or counts["images"] == first[1] else (counts["images"] - first[1]) / (
        time.perf_counter() - first[0])
    return counts, steady


def _spread() -> dict[str, Any]:
    """CPU actors on as many nodes as possible (Ray's default packs them)."""
    return {"scheduling_strategy": "SPREAD"}


class RayScorer:
    """One actor of the pool: a :class:`Scorer` that tags each row with the Ray node it ran on."""

    def __init__(self, options: ScorerOptions, threads: int | None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # no line per image
        self.scorer = Scorer(options, node_id=ray.get_runtime_context().get_node_id())

    def __call__(self, batch: pa.Table) -> pa.Table:
        return pa.Table.from_pylist(self.scorer.score(input_files(batch)), schema=SCHEMA)
