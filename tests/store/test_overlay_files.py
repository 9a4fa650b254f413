"""Overlay file names made by the server and OVERLAY_RETENTION pruning."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from anomalia.store.overlay_files import OverlayFolder, safe_stem
from anomalia.service.settings import load_settings
from anomalia.viz.overlays import Visuals


@pytest.mark.parametrize("name, stem", [
    ("pieza.png", "pieza"), ("../../x", "x"), ("..\\..\\win.png", "win"), ("/etc/passwd", "passwd"),
    ("..", "upload"), ("", "upload"), (None, "upload"), ("a b.c.jpeg", "a_b_c"), (".hidden", "hidden"),
    ("ñandú.png", "and"), ("-rf.png", "rf"), ("x" * 300, "x" * 48),
])
def test_safe_stem_keeps_only_a_plain_base_name(name, stem):
    assert safe_stem(name) == stem


def _visuals() -> Visuals:
    grey = np.zeros((8, 8), np.uint8)
    return Visuals(overlay=np.zeros((8, 8, 3), np.uint8), heat=np.zeros((8, 8, 3), np.uint8), mask=grey)


def _folder(tmp_path, retention: str) -> OverlayFolder:
    settings = load_settings(static_dir=tmp_path / "static", overlay_retention=retention)
    return settings.overlay_folder().prepare()


def test_save_writes_three_files_and_returns_the_overlay_url(tmp_path):
    folder = _folder(tmp_path, "100")
    url = folder.save("pieza.png", _visuals())
    base = url.rsplit("/", 1)[1].removesuffix("_overlay.png")
    assert url.startswith("/static/overlays/pieza_")
    assert sorted(p.name for p in folder.folder.iterdir()) == sorted(f"{base}_{k}.png" for k in ("heat", "mask", "overlay"))


def test_retention_by_count_deletes_the_oldest_result_sets(tmp_path):
    folder = _folder(tmp_path, "7")  # room for two sets of three files
    (folder.folder / "notes.txt").write_text("not ours")
    urls = []
    for i in range(4):
        urls.append(folder.save(f"p{i}.png", _visuals()))
        for path in folder.folder.glob(f"p{i}_*"):
            os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))  # distinct, increasing ages
    names = {p.name for p in folder.folder.iterdir()}
    kept = {url.rsplit("/", 1)[1] for url in urls if url.rsplit("/", 1)[1] in names}
    assert kept == {urls[2].rsplit("/", 1)[1], urls[3].rsplit("/", 1)[1]}
    assert len(names) == 7 and "notes.txt" in names


def test_the_set_just_written_survives_even_a_zero_retention(tmp_path):
    folder = _folder(tmp_path, "0")
    first = folder.save("a.png", _visuals())
    second = folder.save("b.png", _visuals())
    names = {p.name for p in folder.folder.iterdir()}
    assert second.rsplit("/", 1)[1] in names and first.rsplit("/", 1)[1] not in names and len(names) == 3


def test_retention_by_age_deletes_old_sets_only(tmp_path):
    folder = _folder(tmp_path, "1h")
    old = folder.save("old.png", _visuals())
    for path in folder.folder.glob("old_*"):
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    new = folder.save("new.png", _visuals())
    names = {p.name for p in folder.folder.iterdir()}
    assert new.rsplit("/", 1)[1] in names and old.rsplit("/", 1)[1] not in names and len(names) == 3


def test_pruning_also_runs_at_start_up(tmp_path):
    folder = _folder(tmp_path, "30m")
    folder.save("old.png", _visuals())
    for path in folder.folder.iterdir():
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    _folder(tmp_path, "30m")
    assert list(folder.folder.iterdir()) == []


def test_a_nested_overlays_subdir_gets_its_url(tmp_path):
    settings = load_settings(static_dir=tmp_path / "static", overlays_subdir="out/vis")
    folder = settings.overlay_folder().prepare()
    assert folder.save("x.png", _visuals()).startswith("/static/out/vis/x_")
