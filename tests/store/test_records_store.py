"""The records store on its own, on SQLite and on a real PostgreSQL: migrations, cursors, kept images, locks."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine

from anomalia.store.database import (
    DatabaseConfigError,
    DatabaseUnavailable,
    current_revision,
    head_revision,
    open_engine,
    redact,
    upgrade,
)
from anomalia.store.record_images import RecordImages, Retention
from anomalia.store.records import MalformedCursor, NewRecord, RecordFilter, RecordStore, decode_cursor
from anomalia.store.records_schema import metadata
from anomalia.store.write_locks import LockHeld, WriteLocks


def new_record(created_us: int, **fields) -> NewRecord:
    values = dict(created_us=created_us, endpoint="/predict", source="artifacts", score=1.0, threshold=2.0,
                  verdict="OK", n_regions=0, regions=[], image_width=32, image_height=32, image_sha256="0" * 64)
    return NewRecord(**{**values, **fields})


def test_the_migrations_build_exactly_the_schema_the_code_queries(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = open_engine(database_url)
    assert upgrade(engine) == head_revision() == current_revision(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []
    engine.dispose()


def test_upgrades_started_together_by_several_processes_run_once(database_url):
    engines = [open_engine(database_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(upgrade, engines))
    assert revisions == [head_revision()] * 4
    assert RecordStore(engines[0]).count() == 0
    for engine in engines:
        engine.dispose()


def test_pages_are_newest_first_and_ties_in_time_are_broken_by_id(database_url):
    store = RecordStore(open_engine(database_url))
    made = [store.add(new_record(1_000 + (i // 3), part_id=f"p{i}")).id for i in range(10)]  # 3 per microsecond
    seen, cursor = [], None
    while True:
        page, cursor = store.page(RecordFilter(), 4, cursor)
        seen += [record.id for record in page]
        if cursor is None:
            break
    assert seen == sorted(made, key=lambda ident: (1_000 + (made.index(ident) // 3), ident), reverse=True)
    assert [r.id for r in store.iterate(RecordFilter(), chunk=3)] == seen
    store.engine.dispose()


@pytest.mark.parametrize("cursor", ["", "!!!", "a" * 65, "MTIz", "YS5i", "LTEuMg"])
def test_a_cursor_this_store_did_not_make_is_refused(cursor):
    with pytest.raises(MalformedCursor):
        decode_cursor(cursor)


def test_an_unreachable_database_is_database_unavailable_and_a_bad_url_a_config_error():
    from anomalia.local_postgres import free_port

    engine = open_engine(f"postgresql+psycopg://someone:secret@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(DatabaseUnavailable, match="records database is unavailable") as raised:
        RecordStore(engine).add(new_record(1))
    assert "secret" not in str(raised.value)
    for url in ("mysql://a@b/c", "sqlite://", "sqlite:///:memory:", "not a url"):
        with pytest.raises(DatabaseConfigError):
            open_engine(url)
    assert redact("postgresql+psycopg://u:pw@h/d") == "postgresql+psycopg://u:***@h/d"


def test_kept_images_obey_count_bytes_and_age_oldest_first(tmp_path):
    images = RecordImages(tmp_path / "images", Retention(max_files=3, max_bytes=None, max_age_s=None))
    names = [images.keep(bytes([i]) * 100) for i in range(5)]
    assert [images.exists(name) for name in names] == [False, False, True, True, True]
    images.keep(bytes([2]) * 100)  # kept again: it becomes the newest, so the next prune spares it
    images.keep(bytes([9]) * 100)
    assert [images.exists(name) for name in names] == [False, False, True, False, True]
    by_bytes = RecordImages(tmp_path / "bytes", Retention(max_files=None, max_bytes=250))
    sized = [by_bytes.keep(bytes([i]) * 100) for i in range(4)]
    assert [by_bytes.exists(name) for name in sized] == [False, False, True, True]
    by_age = RecordImages(tmp_path / "age", Retention(max_files=None, max_bytes=None, max_age_s=60))
    old = by_age.keep(b"old" * 10)
    path = by_age.path(old)
    os.utime(path, (time.time() - 3600, time.time() - 3600))
    fresh = RecordImages(tmp_path / "age", by_age.retention)  # a restart reads the ages from the disk
    fresh.keep(b"new" * 10)
    assert not fresh.exists(old)
    assert RecordImages(tmp_path / "x").path("../../etc/passwd") is None


def test_one_writer_per_role_roi_across_lock_holders_and_a_dead_holder_frees_it(tmp_path):
    first, second = WriteLocks(tmp_path), WriteLocks(tmp_path)
    with first.hold("caja", "tapa"):
        with pytest.raises(LockHeld):
            with second.hold("caja", "tapa"):
                pass
        with second.hold("caja", "otra"):  # another region is free
            pass
    with second.hold("caja", "tapa"):
        pass
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time; d = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(d, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"),
        str(tmp_path / "caja" / "tapa.lock")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        with first.hold("caja", "tapa"):
            pass
    holder.kill()
    holder.wait()
    holder.stdout.close()
    with first.hold("caja", "tapa"):  # the kernel released the dead process's lock
        pass


def test_postgresql_advisory_locks_exclude_writers_that_share_no_folder(postgres, tmp_path):
    url = postgres.create_database("locks_test")
    engines = [create_engine(url) for _ in range(2)]
    first, second = WriteLocks(tmp_path / "a", engines[0]), WriteLocks(tmp_path / "b", engines[1])
    barrier = threading.Event()
    with first.hold("caja", "tapa"):
        with pytest.raises(LockHeld, match="PostgreSQL"):
            with second.hold("caja", "tapa"):
                barrier.set()
    assert not barrier.is_set()
    with second.hold("caja", "tapa"):
        pass
    for engine in engines:
        engine.dispose()
