"""The role/roi model store and the dataset folders: layout, atomic switch, immutability, identifiers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from anomalia.store.datasets import DatasetStore, image_suffix
from anomalia.store.model_store import STAGING_PREFIX, InvalidIdentifier, ModelStore, check_identifier

SWITCHES = 300
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def write_version(store: ModelStore, role: str, roi: str, marker: str) -> str:
    with store.stage(role, roi) as (staging, version):
        for name in ("embeddings.npy", "coreset.faiss"):
            (staging / name).write_text(f"{name}-{marker}")
        (staging / "manifest.json").write_text(f'{{"model_version": "{version}"}}')
        store.commit(role, roi, staging, version)
    return version


@pytest.mark.parametrize("good", ["a", "Role_1", "x-y", "A" * 64, "0"])
def test_identifiers_accepted(good):
    assert check_identifier("role_id", good) == good


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "a b", "ñ", "A" * 65, ".hidden", "a\x00", None, 3])
def test_identifiers_rejected(bad, tmp_path):
    with pytest.raises(InvalidIdentifier, match="role_id must be 1-64 characters"):
        check_identifier("role_id", bad)
    with pytest.raises(InvalidIdentifier):
        ModelStore(tmp_path).link("ok", bad)
    assert list(tmp_path.iterdir()) == []


def test_commit_publishes_seed_layout_through_a_symlink(tmp_path):
    store = ModelStore(tmp_path)
    assert store.current_version("r", "a") is None
    version = write_version(store, "r", "a", "one")
    link = tmp_path / "r" / "a"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert sorted(p.name for p in link.iterdir()) == ["coreset.faiss", "embeddings.npy", "manifest.json"]
    assert store.current_version("r", "a") == version
    assert store.list_current() == {"r": ["a"]}
    assert (link / "embeddings.npy").stat().st_mode & 0o222 == 0


def test_new_version_switches_and_keeps_history(tmp_path):
    store = ModelStore(tmp_path)
    first = write_version(store, "r", "a", "one")
    second = write_version(store, "r", "a", "two")
    assert store.current_version("r", "a") == second
    assert store.versions("r", "a") == sorted([first, second])
    assert (store.version_folder("r", "a", first) / "embeddings.npy").read_text() == "embeddings.npy-one"
    assert (tmp_path / "r" / "a" / "embeddings.npy").read_text() == "embeddings.npy-two"
    assert [p.name for p in (tmp_path / "r").iterdir() if p.name.startswith(".") and "link" in p.name] == []


def test_derive_hard_links_the_bank(tmp_path):
    store = ModelStore(tmp_path)
    first = write_version(store, "r", "a", "one")
    base = store.version_folder("r", "a", first)
    with store.stage("r", "a") as (staging, version):
        store.derive("r", "a", base, staging)
        (staging / "manifest.json").write_text("{}")
        store.commit("r", "a", staging, version)
    derived = store.version_folder("r", "a", version)
    for name in ("embeddings.npy", "coreset.faiss"):
        assert (derived / name).stat().st_ino == (base / name).stat().st_ino
    assert (base / "manifest.json").read_text() == f'{{"model_version": "{first}"}}'


def test_failed_write_leaves_no_staging_and_keeps_current(tmp_path):
    store = ModelStore(tmp_path)
    first = write_version(store, "r", "a", "one")
    with pytest.raises(RuntimeError, match="boom"):
        with store.stage("r", "a") as (staging, _):
            (staging / "embeddings.npy").write_text("half")
            raise RuntimeError("boom")
    assert store.current_version("r", "a") == first
    assert [p.name for p in store.versions_dir("r", "a").iterdir()] == [first]


def test_clean_stale_removes_dead_writers_only(tmp_path):
    store = ModelStore(tmp_path)
    current = write_version(store, "r", "a", "one")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = store.versions_dir("r", "a") / f"{STAGING_PREFIX}20990101T000000000000Z-abcdef-{dead_pid}"
    stale.mkdir()
    (stale / "embeddings.npy").write_text("half")
    alive = store.versions_dir("r", "a") / f"{STAGING_PREFIX}20990101T000000000000Z-fedcba-{os.getppid()}"
    alive.mkdir()
    assert store.current_version("r", "a") == current
    removed = store.clean_stale()
    assert stale in removed and not stale.exists()
    assert alive.exists()
    assert store.current_version("r", "a") == current


def test_plain_folder_is_served_then_adopted(tmp_path):
    store = ModelStore(tmp_path)
    plain = tmp_path / "r" / "a"
    plain.mkdir(parents=True)
    (plain / "manifest.json").write_text('{"model_version": "by-hand"}')
    assert store.current_version("r", "a") == "by-hand"
    assert store.folder_of("r", "a", "by-hand") == plain
    new = write_version(store, "r", "a", "two")
    assert store.current_version("r", "a") == new
    adopted = [v for v in store.versions("r", "a") if v.startswith("adopted-")]
    assert len(adopted) == 1


def test_dataset_names_come_from_content(tmp_path):
    datasets = DatasetStore(tmp_path)
    name = datasets.add("r", "a", "ok", PNG)
    assert name.endswith(".png") and len(name) == 24 + 4
    assert datasets.add("r", "a", "ok", PNG) == name
    assert datasets.names("r", "a", "ok") == [name]
    assert datasets.names("r", "a", "ng") == []
    with pytest.raises(ValueError, match="label"):
        datasets.folder("r", "a", "maybe")
    with pytest.raises(InvalidIdentifier):
        datasets.add("..", "a", "ok", PNG)
    with pytest.raises(ValueError, match="not a dataset image name"):
        datasets.path("r", "a", "ok", "../x.png")


@pytest.mark.parametrize("data, suffix", [(PNG, ".png"), (b"\xff\xd8\xff\xe0", ".jpg"), (b"BM....", ".bmp"),
                                          (b"RIFF\x00\x00\x00\x00WEBP", ".webp"), (b"????", ".img")])
def test_image_suffix(data, suffix):
    assert image_suffix(data) == suffix


def test_a_reader_never_finds_the_model_missing_while_versions_switch(tmp_path):
    """The switch renames a new link over the old one (rename(2) is atomic): a reader resolving
    ``models/<role>/<roi>`` in a tight loop sees the old version or the new one, never nothing."""
    store = ModelStore(tmp_path)
    write_version(store, "r", "a", "first")
    link = tmp_path / "r" / "a"
    stop, missing, reads = threading.Event(), [], [0]

    def read_until_stopped() -> None:
        while not stop.is_set():
            reads[0] += 1
            try:
                target = os.readlink(link)
                manifest = (link / "manifest.json").read_text()
            except OSError as error:
                missing.append(repr(error))
                continue
            if not manifest:
                missing.append(f"empty manifest in {target}")

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        for switch in range(SWITCHES):
            write_version(store, "r", "a", str(switch))
    finally:
        stop.set()
        reader.join(30)
    assert reads[0] > SWITCHES, "the reader did not run alongside the switches"
    assert missing == [], f"{len(missing)} of {reads[0]} reads found no model, e.g. {missing[0]}"


KILLED_WRITER = """
import os, signal, sys
from pathlib import Path
from anomalia.store.datasets import DatasetStore, image_name
from anomalia.store.model_store import ModelStore

root, image = Path(sys.argv[1]), bytes.fromhex(sys.argv[2])
ModelStore._switch = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # killed right before the switch
models, datasets = ModelStore(root / "models"), DatasetStore(root / "datasets")
with models.stage("r", "a") as (staging, version):
    (staging / "manifest.json").write_text("{}")
    models.note(staging, {"dataset_ok": [image_name(image)]})
    datasets.add("r", "a", "ok", image)
    models.commit("r", "a", staging, version)
"""


def tree(root) -> dict[str, str | None]:
    return {str(p.relative_to(root)): os.readlink(p) if p.is_symlink() else None for p in sorted(root.rglob("*"))}


def test_recover_undoes_a_write_killed_before_its_switch_and_what_its_journal_names(tmp_path):
    models, datasets = ModelStore(tmp_path / "models"), DatasetStore(tmp_path / "datasets")
    current = write_version(models, "r", "a", "one")
    datasets.add("r", "a", "ok", PNG)
    before = tree(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path), (PNG + b"new").hex()],
                            capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert len(models.versions("r", "a")) == 2 and len(datasets.names("r", "a", "ok")) == 2  # the leftovers
    undone = models.recover(lambda write: datasets.remove(write.role, write.roi, "ok", write.notes["dataset_ok"]))
    assert [(write.role, write.roi) for write in undone] == [("r", "a")]
    models.clean_stale()
    assert tree(tmp_path) == before and models.current_version("r", "a") == current
    assert models.recover(lambda write: None) == []  # nothing left to undo
