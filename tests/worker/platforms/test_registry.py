"""Each platform of the registry, as the receiver and the workers build it.

A platform's API client is built at its first use (the receiver never reads
points, so the web process never loads a client), so the budget buckets its
``quotas`` names are spelled beside the clients that take from them: here they
must agree, or a refresh would take from a bucket with no quota.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import TEST_SECRET_KEY
from worker.config import Settings, load_settings
from worker.platforms import PLATFORM_NAMES, build_platform
from worker.platforms.salla import client as salla_client
from worker.platforms.shopify import client as shopify_client
from worker.platforms.zid import client as zid_client

CLIENTS: dict[str, ModuleType] = {
    "salla": salla_client,
    "zid": zid_client,
    "shopify": shopify_client,
    "appstle": shopify_client,  # Appstle's events read points with the Shopify stores' client
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings({"RELAY_SECRET_KEY": TEST_SECRET_KEY, "RELAY_DATA_DIR": str(tmp_path)})


def test_it_knows_the_client_of_every_platform() -> None:
    assert set(CLIENTS) == set(PLATFORM_NAMES)


@pytest.mark.parametrize("name", PLATFORM_NAMES)
def test_its_quota_is_the_bucket_its_client_takes_from(name: str, settings: Settings) -> None:
    platform = build_platform(name, settings)
    assert set(platform.quotas) == {CLIENTS[name].QUOTA_BUCKET}


@pytest.mark.parametrize("name", PLATFORM_NAMES)
def test_it_builds_its_api_client_once(name: str, settings: Settings) -> None:
    platform = build_platform(name, settings)
    attribute = "_api" if name == "salla" else "api"
    first = getattr(platform, attribute)
    assert getattr(platform, attribute) is first
    assert type(first).__module__ == CLIENTS[name].__name__
