"""Inspection records in the database: add one per verdict, page through them newest first, review them.

Pages use a keyset cursor on ``(created_us, id)``, so a page never repeats or skips a record
while new ones arrive, and every query walks an index whatever the table's size. Every
driver error leaves as :class:`~anomalia.store.database.DatabaseUnavailable`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from sqlalchemy import Engine, and_, case, func, insert, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from anomalia.store.database import ensure_schema, schema_state, translated_errors
from anomalia.store.records_schema import inspections

REVIEW_STATES = ("unreviewed", "reviewed", "ok", "ng")
LABELS = ("ok", "ng")
VERDICTS = ("OK", "NG")


@dataclass(frozen=True)
class NewRecord:
    """What an inspection leaves behind (``source``: ``artifacts`` for ``/predict``, ``product`` for role/roi)."""

    created_us: int
    endpoint: str
    source: str
    score: float
    threshold: float
    verdict: str
    n_regions: int
    regions: list[dict[str, Any]]
    image_width: int
    image_height: int
    image_sha256: str
    role_id: str | None = None
    roi_id: str | None = None
    model_version: str | None = None
    bank_version: str | None = None
    backbone: str | None = None
    weights: str | None = None
    weights_fingerprint: str | None = None
    area_mm2_thr: float | None = None
    mode: str | None = None
    image_name: str | None = None
    overlay: str | None = None
    filename: str | None = None
    request_id: str | None = None
    duration_ms: float | None = None
    part_id: str | None = None
    station_id: str | None = None
    operator_id: str | None = None
    token_id: str | None = None


@dataclass(frozen=True)
class Record(NewRecord):
    """A stored record, with the operator's review once there is one."""

    id: int = 0
    review_label: str | None = None
    review_comment: str | None = None
    reviewer: str | None = None
    reviewed_us: int | None = None
    dataset_image: str | None = None


COLUMNS = tuple(f.name for f in fields(Record))


@dataclass(frozen=True)
class RecordFilter:
    """Which records a query returns; every field left None matches everything."""

    role_id: str | None = None
    roi_id: str | None = None
    source: str | None = None
    verdict: str | None = None
    since_us: int | None = None
    until_us: int | None = None
    part_id: str | None = None
    station_id: str | None = None
    operator_id: str | None = None
    model_version: str | None = None
    review: str | None = None
    score_min: float | None = None
    score_max: float | None = None

    def clauses(self) -> list[ColumnElement[bool]]:
        c = inspections.c
        equal = {"role_id": c.role_id, "roi_id": c.roi_id, "source": c.source, "verdict": c.verdict,
                 "part_id": c.part_id, "station_id": c.station_id, "operator_id": c.operator_id,
                 "model_version": c.model_version}
        chosen: list[ColumnElement[bool]] = [column == getattr(self, name)
                                              for name, column in equal.items() if getattr(self, name) is not None]
        if self.since_us is not None:
            chosen.append(c.created_us >= self.since_us)
        if self.until_us is not None:
            chosen.append(c.created_us < self.until_us)
        if self.score_min is not None:
            chosen.append(c.score >= self.score_min)
        if self.score_max is not None:
            chosen.append(c.score <= self.score_max)
        if self.review == "unreviewed":
            chosen.append(c.review_label.is_(None))
        elif self.review == "reviewed":
            chosen.append(c.review_label.is_not(None))
        elif self.review in LABELS:
            chosen.append(c.review_label == self.review)
        return chosen


class MalformedCursor(ValueError):
    """A ``cursor`` this store did not hand out."""


def encode_cursor(record: Record) -> str:
    raw = f"{record.created_us}.{record.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """``(created_us, id)`` of the last record of the previous page."""
    try:
        if len(cursor) > 64:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        created, _, ident = raw.partition(".")
        if not (created.isdigit() and ident.isdigit()) or len(created) > 19 or len(ident) > 19:
            raise ValueError
        return int(created), int(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise MalformedCursor("cursor is malformed: pass the next_cursor of a previous page unchanged") from None


def _record(row: Any) -> Record:
    return Record(**{name: row._mapping[name] for name in COLUMNS})


NEWEST_FIRST = (inspections.c.created_us.desc(), inspections.c.id.desc())


class RecordStore:
    """The ``inspections`` table behind one engine (SQLite file or PostgreSQL).

    The schema is brought up to date on first use (and again after a failure), so a server
    that starts while its database is unreachable serves everything else and records as
    soon as the database is back.
    """

    def __init__(self, engine: Engine):
        self.engine = engine

    def ensure_schema(self) -> str | None:
        """Upgrade the schema once per process (``DatabaseUnavailable`` while the database is unreachable)."""
        return ensure_schema(self.engine)

    @property
    def revision(self) -> str | None:
        return schema_state(self.engine).revision

    @property
    def last_error(self) -> str | None:
        return schema_state(self.engine).error

    def add(self, new: NewRecord) -> Record:
        """Insert and commit; the returned record has its id (the commit is done when this returns)."""
        values = asdict(new)
        self.ensure_schema()
        with translated_errors("recording the inspection"), self.engine.begin() as connection:
            ident = connection.execute(insert(inspections).values(**values).returning(inspections.c.id)).scalar_one()
        return Record(**values, id=int(ident))

    def get(self, ident: int) -> Record | None:
        self.ensure_schema()
        with translated_errors("reading a record"), self.engine.connect() as connection:
            row = connection.execute(select(inspections).where(inspections.c.id == ident)).first()
        return _record(row) if row is not None else None

    def page(self, where: RecordFilter, limit: int, cursor: str | None = None) -> tuple[list[Record], str | None]:
        """Up to ``limit`` records newest first, after ``cursor``; the next page's cursor (None at the end)."""
        clauses = where.clauses()
        if cursor is not None:
            created, ident = decode_cursor(cursor)
            c = inspections.c
            clauses.append(or_(c.created_us < created, and_(c.created_us == created, c.id < ident)))
        query = select(inspections).where(*clauses).order_by(*NEWEST_FIRST).limit(limit + 1)
        self.ensure_schema()
        with translated_errors("listing records"), self.engine.connect() as connection:
            rows = [_record(row) for row in connection.execute(query)]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1]) if more and rows else None

    def iterate(self, where: RecordFilter, chunk: int = 1000, cursor: str | None = None) -> Iterator[Record]:
        """Every matching record after ``cursor``, newest first, one page at a time (exports of any size)."""
        while True:
            rows, cursor = self.page(where, chunk, cursor)
            yield from rows
            if cursor is None:
                return

    def review(self, ident: int, *, label: str, comment: str | None, reviewer: str | None,
               reviewed_us: int) -> Record | None:
        """Store the operator's word on one record (a later review replaces it); None when there is no such id."""
        values = {"review_label": label, "review_comment": comment, "reviewer": reviewer, "reviewed_us": reviewed_us}
        self.ensure_schema()
        with translated_errors("reviewing a record"), self.engine.begin() as connection:
            done = connection.execute(update(inspections).where(inspections.c.id == ident).values(**values))
        return self.get(ident) if done.rowcount else None

    def set_dataset_image(self, ident: int, name: str) -> None:
        with translated_errors("updating a record"), self.engine.begin() as connection:
            connection.execute(update(inspections).where(inspections.c.id == ident).values(dataset_image=name))

    def reviewed_scores(self, role_id: str, roi_id: str, bank_version: str, limit: int) -> dict[str, list[float]]:
        """``{"ok": [...], "ng": [...]}``: the scores operators labelled on this bank, the newest ``limit`` of each."""
        c = inspections.c
        found: dict[str, list[float]] = {}
        self.ensure_schema()
        with translated_errors("reading reviews"), self.engine.connect() as connection:
            for label in LABELS:
                query = (select(c.score).where(c.role_id == role_id, c.roi_id == roi_id,
                                                c.bank_version == bank_version, c.review_label == label)
                         .order_by(*NEWEST_FIRST).limit(limit))
                found[label] = [float(score) for score in connection.execute(query).scalars()][::-1]
        return found

    def count(self, where: RecordFilter | None = None) -> int:
        self.ensure_schema()
        query = select(func.count()).select_from(inspections).where(*(where or RecordFilter()).clauses())
        with translated_errors("counting records"), self.engine.connect() as connection:
            return int(connection.execute(query).scalar_one())

    # -- statistics -------------------------------------------------------------------------
    def bucket_counts(self, where: RecordFilter, bucket_us: int) -> list[dict[str, Any]]:
        """Inspections and NG verdicts per product/region and time bucket (bucket = created_us // bucket_us)."""
        self.ensure_schema()
        c = inspections.c
        bucket = (c.created_us // bucket_us).label("bucket")
        ng = func.sum(case((c.verdict == "NG", 1), else_=0)).label("n_ng")
        query = (select(c.source, c.role_id, c.roi_id, bucket, func.count().label("n"), ng)
                 .where(*where.clauses()).group_by(c.source, c.role_id, c.roi_id, bucket).order_by(bucket))
        with translated_errors("computing statistics"), self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def group_scores(self, where: RecordFilter, limit: int) -> list[tuple[str, str | None, str | None, float]]:
        """``(source, role, roi, score)`` of the newest ``limit`` matching records."""
        self.ensure_schema()
        c = inspections.c
        query = (select(c.source, c.role_id, c.roi_id, c.score).where(*where.clauses())
                 .order_by(*NEWEST_FIRST).limit(limit))
        with translated_errors("computing statistics"), self.engine.connect() as connection:
            return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]

    def versions_in_use(self, where: RecordFilter) -> list[dict[str, Any]]:
        self.ensure_schema()
        c = inspections.c
        query = (select(c.source, c.role_id, c.roi_id, c.model_version, func.count().label("n"),
                        func.min(c.created_us).label("first_us"), func.max(c.created_us).label("last_us"))
                 .where(*where.clauses()).group_by(c.source, c.role_id, c.roi_id, c.model_version)
                 .order_by(func.max(c.created_us).desc()))
        with translated_errors("computing statistics"), self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def review_totals(self, where: RecordFilter) -> dict[str, int]:
        """Counts of inspections, NG verdicts, reviews and the reviews that contradicted the verdict."""
        self.ensure_schema()
        c = inspections.c
        total = lambda condition: func.sum(case((condition, 1), else_=0))  # noqa: E731
        query = select(func.count().label("n"), total(c.verdict == "NG").label("n_ng"),
                       total(c.review_label.is_not(None)).label("n_reviewed"),
                       total(and_(c.verdict == "NG", c.review_label == "ok")).label("n_false_ng"),
                       total(and_(c.verdict == "OK", c.review_label == "ng")).label("n_missed_ng")
                       ).where(*where.clauses())
        with translated_errors("computing statistics"), self.engine.connect() as connection:
            row = connection.execute(query).one()
        return {key: int(value or 0) for key, value in row._mapping.items()}
