"""The effective-configuration view: secrets masked whatever their shape, every setting kept with its source."""

from __future__ import annotations

import pytest

from anomalia.core.scoring import MODE_FACTORS
from anomalia.usecases.configuration import SettingValue, describe, shown, upload_limits
from anomalia.usecases.limits import MIN_IMAGE_SIDE, MM_PER_PX_MAX, MM_PER_PX_MIN


@pytest.mark.parametrize("name", ["BACKEND_API_KEY", "SERVICE_TOKEN", "CLIENT_SECRET", "DB_PASSWORD", "passwd",
                                  "AWS_CREDENTIALS"])
def test_a_secret_name_shows_only_whether_it_is_set(name):
    assert shown(name, "hunter2") == {"set": True}
    assert shown(name, None) == {"set": False} and shown(name, "") == {"set": False}


def test_a_value_flagged_secret_is_masked_whatever_its_name():
    assert shown("SIGNING", "hunter2", secret=True) == {"set": True}


@pytest.mark.parametrize(("url", "expected"), [
    ("postgresql+psycopg://user:pass@host/db", "postgresql+psycopg://user:***@host/db"),
    ("postgresql://user:p@ss:w/rd@db.local:5432/records", "postgresql://user:***@db.local:5432/records"),
    ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ("https://host/api?api_key=hunter2&page=2", "https://host/api?api_key=***&page=2"),
    ("sqlite:///data/records.db", "sqlite:///data/records.db"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
])
def test_passwords_inside_urls_are_masked(url, expected):
    assert shown("DATABASE_URL", url) == expected


def test_lists_and_mappings_are_masked_item_by_item():
    assert shown("CORS_ORIGINS", ["https://a:b@c", "https://d"]) == ["https://a:***@c", "https://d"]
    assert shown("EXTRA", {"token": "x", "url": "s://u:p@h"}) == {"token": {"set": True}, "url": "s://u:***@h"}


def test_plain_values_are_shown_as_they_are():
    for value in (3, 0.5, True, None, "models/patchcore", ["http://line-1.local"]):
        assert shown("KNN_K", value) == value


def test_describe_keeps_every_setting_with_its_source_and_the_limits():
    limits = upload_limits(max_upload_mb=20, max_fit_upload_mb=512, max_image_pixels=40_000_000,
                           max_request_pixels=400_000_000)
    view = describe([SettingValue("KNN_K", 5, "env"), SettingValue("BACKEND_API_KEY", "k3y", "init", secret=True)],
                    None, None, limits)
    assert view.settings["KNN_K"].value == 5 and view.settings["KNN_K"].source == "env"
    assert view.settings["BACKEND_API_KEY"].value == {"set": True} and "k3y" not in repr(view)
    assert view.artifact_model is None and view.product_models == ()
    assert view.limits.mode_factors == dict(MODE_FACTORS) and view.limits.min_image_side == MIN_IMAGE_SIDE
    assert (view.limits.mm_per_px_min, view.limits.mm_per_px_max) == (MM_PER_PX_MIN, MM_PER_PX_MAX)
