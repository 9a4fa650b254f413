"""The inspection-records, token and job tables, as SQLAlchemy Core sees them (the migrations create exactly these).

Times are integer microseconds since the Unix epoch (UTC): they sort, compare and bucket
the same way on SQLite and PostgreSQL, and the API shows them as ISO 8601.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

ID = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit on PostgreSQL; SQLite's INTEGER PRIMARY KEY is the rowid (64-bit too)."""
TEXT_ID = 128
"""Longest part, station, operator, reviewer or request id."""

inspections = Table(
    "inspections", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("created_us", BigInteger, nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("source", String(16), nullable=False),
    Column("role_id", String(64)),
    Column("roi_id", String(64)),
    Column("model_version", String(128)),
    Column("bank_version", String(128)),
    Column("backbone", String(64)),
    Column("weights", String(255)),
    Column("weights_fingerprint", String(80)),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("area_mm2_thr", Float),
    Column("mode", String(16)),
    Column("verdict", String(2), nullable=False),
    Column("n_regions", Integer, nullable=False),
    Column("regions", JSON, nullable=False),
    Column("image_width", Integer, nullable=False),
    Column("image_height", Integer, nullable=False),
    Column("image_sha256", String(64), nullable=False),
    Column("image_name", String(80)),
    Column("overlay", String(255)),
    Column("filename", String(255)),
    Column("request_id", String(TEXT_ID)),
    Column("duration_ms", Float),
    Column("part_id", String(TEXT_ID)),
    Column("station_id", String(TEXT_ID)),
    Column("operator_id", String(TEXT_ID)),
    Column("token_id", String(64)),
    Column("review_label", String(2)),
    Column("review_comment", Text),
    Column("reviewer", String(TEXT_ID)),
    Column("reviewed_us", BigInteger),
    Column("dataset_image", String(80)),
    Index("ix_inspections_created", "created_us", "id"),
    Index("ix_inspections_product", "role_id", "roi_id", "created_us", "id"),
    Index("ix_inspections_verdict", "verdict", "created_us", "id"),
    Index("ix_inspections_part", "part_id", "created_us", "id"),
    Index("ix_inspections_station", "station_id", "created_us", "id"),
    Index("ix_inspections_review", "review_label", "created_us", "id"),
    Index("ix_inspections_request", "request_id"),
)

tokens = Table(
    "tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("scopes", String(64), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("state", String(8), nullable=False),
    Column("stage", String(32)),
    Column("progress", Float, nullable=False),
    Column("detail", String(255)),
    Column("result", JSON),
    Column("error", Text),
    Column("token_id", String(64)),
    Column("owner", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_jobs_state_owner", "state", "owner"),
)
"""Background teaches and batches (``?background=true``): state, progress and, once done, the answer's JSON.

``owner`` is ``hostname:pid`` of the server process running the job, so a restart fails only the
jobs whose process is gone (several processes may share one database)."""
