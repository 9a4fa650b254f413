"""What ``anomalia batch`` scores: SOURCE (folder, glob, list file) and MODEL (folder or DATA_ROOT:ROLE/ROI)."""

from __future__ import annotations

import pytest

from anomalia.distributed.sources import list_inputs, parse_model


@pytest.fixture
def archive(tmp_path):
    for name in ("b/2.png", "a/1.jpg", "a/deep/3.PNG", "a/notes.txt", "0.bmp"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_a_folder_is_searched_recursively_for_images_only(archive):
    assert list_inputs(str(archive)) == [str(archive / name) for name in ("0.bmp", "a/1.jpg", "a/deep/3.PNG", "b/2.png")]


def test_a_glob(archive):
    assert list_inputs(str(archive / "a" / "**" / "*.*g")) == [str(archive / "a/1.jpg")]
    assert list_inputs(str(archive / "**" / "*.png")) == [str(archive / "b/2.png")]


def test_a_text_list_is_relative_to_its_folder_and_lists_each_path_once(archive):
    listing = archive / "list.txt"
    listing.write_text(f"b/2.png\n\n# a comment\n{archive / 'a/1.jpg'}\nb/2.png\nmissing.png\n")
    assert list_inputs(str(listing)) == [str(archive / "b/2.png"), str(archive / "a/1.jpg"),
                                         str(archive / "missing.png")]  # a missing file becomes an error row


def test_a_csv_list_takes_the_first_column_and_skips_a_path_header(archive):
    listing = archive / "list.csv"
    listing.write_text("path,label\nb/2.png,ok\n0.bmp,ng\n")
    assert list_inputs(str(listing)) == [str(archive / "b/2.png"), str(archive / "0.bmp")]


def test_sources_that_name_nothing_are_refused(archive, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder, a glob"):
        list_inputs(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="names no image"):
        list_inputs(str(tmp_path / "empty"))


def test_model_is_a_folder_or_a_product_region_of_a_data_root(tmp_path):
    (tmp_path / "model").mkdir()
    assert parse_model(str(tmp_path / "model")).folder == tmp_path / "model"
    product = parse_model(f"{tmp_path}:carcasa/tornillo")
    assert (product.is_product, product.data_root, product.role, product.roi) == (True, tmp_path, "carcasa", "tornillo")
    assert str(product) == f"{tmp_path}:carcasa/tornillo"
    with pytest.raises(FileNotFoundError, match="neither a model folder nor DATA_ROOT:ROLE/ROI"):
        parse_model(str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        parse_model(f"{tmp_path / 'absent'}:carcasa/tornillo")
