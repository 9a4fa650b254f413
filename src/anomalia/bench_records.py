"""``make bench`` (records part): what recording costs an inspection, and how fast ``/records`` answers over
a million records, on SQLite and on a local PostgreSQL (Debian's package, fsync on).

Targets (issue "Inspection records"): recording adds <= 5 ms median to an inspection on SQLite;
``GET /records`` answers in <= 50 ms with 1 000 000 records. Figures, not tests: min/median/max.
Run: ``python -m anomalia.bench_records [--rows 1000000] [--no-postgres] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from anomalia.core.detector import PatchCore, PatchCoreConfig
from anomalia.store.database import is_postgresql, open_engine
from anomalia.store.model_io import save_model
from anomalia.store.record_images import RecordImages
from anomalia.store.records import RecordStore
from anomalia.synthetic import defect_image, good_image
from anomalia.usecases.records import ClientFields, InspectionRecords, RequestFacts

COLUMNS = ("created_us, endpoint, source, role_id, roi_id, model_version, score, threshold, verdict, n_regions, "
           "regions, image_width, image_height, image_sha256, part_id, station_id, request_id")
VALUES = ("{base} + CAST(i AS BIGINT) * 1000000, '/infer', 'product', 'role' || (i % 20), 'roi' || (i % 5), 'v1', (i % 1000) / 100.0, "
          "5.0, CASE WHEN i % 10 = 0 THEN 'NG' ELSE 'OK' END, 0, '[]', 256, 256, 'x', 'P-' || i, 'st-' || (i % 8), "
          "'r' || i")
QUERIES: dict[str, dict[str, Any]] = {
    "newest 50": {},
    "verdict=NG": {"verdict": "NG"},
    "product+region": {"role_id": "role7", "roi_id": "roi2"},
    "part_id": {"part_id": "P-123456"},
    "station unreviewed": {"station_id": "st-3", "review": "unreviewed"},
    "score 9.5-10": {"score_min": 9.5},
    "time window": {"since": "{mid}", "until": "{mid_end}"},
}


def spread(values: list[float]) -> str:
    return f"{min(values):8.2f} {statistics.median(values):8.2f} {max(values):8.2f}"


def fill(engine: Engine, rows: int, base_us: int) -> float:
    """``rows`` varied records generated inside the database (seconds taken)."""
    values = VALUES.format(base=base_us)
    if is_postgresql(engine):
        sql = f"INSERT INTO inspections ({COLUMNS}) SELECT {values} FROM generate_series(0, {rows - 1}) AS s(i)"
    else:
        sql = (f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {rows - 1}) "
               f"INSERT INTO inspections ({COLUMNS}) SELECT {values} FROM s")
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(text(sql))
        if is_postgresql(engine):
            connection.execute(text("ANALYZE inspections"))
        else:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def record_costs(records: InspectionRecords, model_dir: Path, n: int) -> dict[str, list[float]]:
    """ms that ``record_artifact`` adds to a /predict: an OK part (nothing kept) and an NG part (image kept)."""
    from anomalia.usecases.artifact_model import ArtifactModel, ArtifactOptions
    from anomalia.usecases.backbones import ExtractorCache

    model = ArtifactModel.load(ArtifactOptions(model_dir, weights="random"), ExtractorCache("cpu"))
    from anomalia.viz.overlays import encode_png

    costs: dict[str, list[float]] = {"OK part": [], "NG part, image kept": []}
    for label, image in (("OK part", good_image(7)), ("NG part, image kept", defect_image(7, kind="blob")[0])):
        data = encode_png(image)
        prediction = model.predict(data, "p.png")
        prediction = type(prediction)(**{**vars(prediction), "is_anomaly": label != "OK part"})
        for i in range(n):
            started = time.perf_counter()
            records.record_artifact(prediction, data if i % 2 or label == "OK part" else data + b"\0" * (i % 7),
                                    RequestFacts("/predict", f"r{i}", "p.png", 30.0), ClientFields(part_id=f"P{i}"))
            costs[label].append((time.perf_counter() - started) * 1000)
    return costs


def query_times(url: str, model_dir: Path, root: Path, base_us: int, rows: int, repeats: int) -> dict[str, list]:
    """ms per ``GET /records`` (real app in-process: routing, validation, query, JSON) and per ``/stats``."""
    from fastapi.testclient import TestClient

    from anomalia.service.app import create_app
    from anomalia.service.settings import load_settings

    settings = load_settings(artifacts_dir=model_dir, static_dir=root / "static", backend_data_root=root / "data",
                             anomalia_weights="random", database_url=url, patchcore_backbone="resnet18",
                             log_level="WARNING")
    mid = base_us + rows // 2 * 1_000_000
    fmt = {"mid": _iso(mid), "mid_end": _iso(mid + 3600 * 1_000_000)}
    found: dict[str, list] = {}
    with TestClient(create_app(settings)) as client:
        for name, params in QUERIES.items():
            params = {key: str(value).format(**fmt) for key, value in params.items()}
            found[name] = _timed(lambda: client.get("/records", params=params), repeats)
        cursor = None
        for _ in range(10):
            cursor = client.get("/records", params={**({"cursor": cursor} if cursor else {})}).json()["next_cursor"]
        found["11th page"] = _timed(lambda: client.get("/records", params={"cursor": cursor}), repeats)
        until = _iso(base_us + rows * 1_000_000)
        found["/stats 24 h"] = _timed(lambda: client.get("/stats", params={"until": until}), max(3, repeats // 4))
        found["/stats one product, 24 h"] = _timed(
            lambda: client.get("/stats", params={"until": until, "role_id": "role3"}), max(3, repeats // 4))
    return found


def _iso(us: int) -> str:
    from anomalia.usecases.records import iso

    return str(iso(us))


def _timed(call, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = call()
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return times


def run_backend(name: str, url: str, model_dir: Path, rows: int, repeats: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"bench-records-{name}-"))
    engine = open_engine(url)
    store = RecordStore(engine)
    store.ensure_schema()
    records = InspectionRecords(store, RecordImages(root / "images"), "ng")
    costs = record_costs(records, model_dir, 200)
    base_us = int(time.time() * 1e6) - rows * 1_000_000
    fill_s = fill(engine, rows, base_us)
    queries = query_times(url, model_dir, root, base_us, rows, repeats)
    engine.dispose()
    return {"record_ms": costs, "fill_s": fill_s, "rows": store_count(url), "query_ms": queries}


def store_count(url: str) -> int:
    engine = open_engine(url)
    try:
        return RecordStore(engine).count()
    finally:
        engine.dispose()


def report(name: str, figures: dict[str, Any]) -> None:
    print(f"\n== records on {name}: {figures['rows']:,} rows (generated in {figures['fill_s']:.1f} s) ==")
    print(f"{'ms':34s} {'min':>8s} {'median':>8s} {'max':>8s}")
    for label, values in figures["record_ms"].items():
        print(f"{'record write, ' + label:34s} {spread(values)}")
    for label, values in figures["query_ms"].items():
        print(f"{'GET /records ' + label if not label.startswith('/') else 'GET ' + label:34s} {spread(values)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    model_dir = Path(tempfile.mkdtemp(prefix="bench-records-model-")) / "model"
    save_model(PatchCore(PatchCoreConfig(weights="random", holdout_fraction=0.0)).fit(
        [good_image(i) for i in range(8)]), model_dir)
    results = {"sqlite": run_backend("sqlite", f"sqlite:///{tempfile.mkdtemp()}/bench.db", model_dir, args.rows,
                                     args.repeats)}
    report("SQLite (WAL, synchronous=NORMAL)", results["sqlite"])
    if not args.no_postgres:
        from anomalia.local_postgres import LocalPostgres

        server = LocalPostgres(durable=True).start()
        try:
            results["postgresql"] = run_backend("postgresql", server.create_database("bench"), model_dir, args.rows,
                                                args.repeats)
        finally:
            server.stop()
        report("PostgreSQL (local, fsync on)", results["postgresql"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
